// Error mapping against the real server (dev mode and token mode), and
// retries on UNAVAILABLE.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  AlreadyExistsError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  ResourceExhaustedError,
  UnauthenticatedError,
  UnavailableError,
  WitnessClient,
  WitnessError,
  toWitnessError,
} from "../dist/index.js";
import { WitnessServer, freePort, sha256, uniqueKind, within } from "./helpers.js";

describe("errors (dev mode)", () => {
  let server: WitnessServer;
  before(async () => {
    server = await WitnessServer.start({
      extraToml: `
[[policies]]
kind = "pair.*"
required_approvals = 2
context_max_age = "30s"
`,
    });
  });
  after(async () => {
    await server?.stop();
  });

  test("NotFound for an unknown decision", async () => {
    const alice = server.client({ principal: "alice", roles: ["sre"] });
    const err = await alice.get("0190b7a6-0000-7000-8000-000000000000").catch((e) => e);
    assert.ok(err instanceof NotFoundError, String(err));
    assert.ok(err instanceof WitnessError);
    assert.equal(err.code, "NOT_FOUND");
    assert.ok(!err.message.startsWith("["), "message carries no code prefix");
  });

  test("NotFound for a decision the caller may not see", async () => {
    const deployer = server.client({ principal: "deployer" });
    const dba = server.client({ principal: "dan", roles: ["dba"] });
    const { decision } = await deployer.askNoWait(uniqueKind("hidden"), {}, { authorizedRoles: ["sre"] });
    await assert.rejects(dba.get(decision.id), NotFoundError);
  });

  test("InvalidArgument names the field", async () => {
    const deployer = server.client({ principal: "deployer" });
    const alice = server.client({ principal: "alice", roles: ["sre"] });
    const noRoles = await deployer.askNoWait(uniqueKind("bad"), {}, { authorizedRoles: [] }).catch((e) => e);
    assert.ok(noRoles instanceof InvalidArgumentError, String(noRoles));
    assert.equal(noRoles.field, "authorized_roles");
    assert.match(noRoles.message, /^authorized_roles: /);

    const { decision } = await deployer.askNoWait(uniqueKind("bad"), {}, { authorizedRoles: ["sre"] });
    const noWhy = await alice.answer(decision.id, "approve", "").catch((e) => e);
    assert.ok(noWhy instanceof InvalidArgumentError, String(noWhy));
    assert.equal(noWhy.field, "rationale");

    const schema = { type: "object", required: ["minutes"], properties: { minutes: { type: "integer" } } };
    const withSchema = await deployer.askNoWait(uniqueKind("bad"), {}, { authorizedRoles: ["sre"], responseSchema: schema });
    const badAnswer = await alice
      .answer(withSchema.decision.id, "approve", "ok", { answer: { minutes: "ten" } })
      .catch((e) => e);
    assert.ok(badAnswer instanceof InvalidArgumentError, String(badAnswer));
    assert.equal(badAnswer.field, "answer");
  });

  test("PermissionDenied for an operator without the role", async () => {
    const deployer = server.client({ principal: "deployer" });
    const { decision } = await deployer.askNoWait(uniqueKind("perm"), {}, { authorizedRoles: ["sre"] });
    // The asker sees its decision but may not approve it.
    const self = await deployer.answer(decision.id, "approve", "me").catch((e) => e);
    assert.ok(self instanceof PermissionDeniedError, String(self));
    assert.equal(self.code, "PERMISSION_DENIED");
  });

  test("FailedPrecondition: second answer, and a quorum without re-confirmed context", async () => {
    const deployer = server.client({ principal: "deployer" });
    const alice = server.client({ principal: "alice", roles: ["sre"] });
    const bob = server.client({ principal: "bob", roles: ["sre"] });
    // askNoWait: nobody reports the context, so the quorum cannot complete.
    const { decision } = await deployer.askNoWait("pair.rotate-keys", { keys: 3 }, {
      authorizedRoles: ["sre"],
      context: { keys: ["k1", "k2", "k3"] },
    });
    await alice.answer(decision.id, "approve", "fine");
    await assert.rejects(alice.answer(decision.id, "approve", "again"), FailedPreconditionError);
    const err = await bob.answer(decision.id, "approve", "fine too").catch((e) => e);
    assert.ok(err instanceof FailedPreconditionError, String(err));
    assert.match(err.message, /re-confirmed/);
    // The operator's own matching current_context confirms it.
    const ok = await bob.answer(decision.id, "approve", "fine too", { currentContext: { keys: ["k1", "k2", "k3"] } });
    assert.equal(ok.outcome, "CLOSED");
    assert.equal(ok.decision.status, "APPROVED");
  });

  test("AlreadyExists: same requestId, other content; Answer retries are idempotent", async () => {
    const deployer = server.client({ principal: "deployer" });
    const alice = server.client({ principal: "alice", roles: ["sre"] });
    const kind = uniqueKind("dup");
    await deployer.askNoWait(kind, { n: 1 }, { authorizedRoles: ["sre"], requestId: `r-${kind}` });
    await assert.rejects(
      deployer.askNoWait(kind, { n: 2 }, { authorizedRoles: ["sre"], requestId: `r-${kind}` }),
      AlreadyExistsError,
    );
    const { decision } = await deployer.askNoWait(uniqueKind("dup"), {}, { authorizedRoles: ["sre"] });
    const a = await alice.answer(decision.id, "approve", "yes", { requestId: "ans-1" });
    const b = await alice.answer(decision.id, "approve", "yes", { requestId: "ans-1" });
    assert.equal(a.decision.version, b.decision.version);
    assert.equal(b.decision.status, "APPROVED");
  });

  test("list pages through every decision, oldest first", async () => {
    const deployer = server.client({ principal: "deployer" });
    const kind = uniqueKind("page");
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) {
      ids.push((await deployer.askNoWait(kind, { i }, { authorizedRoles: ["sre"] })).decision.id);
    }
    const first = await deployer.listPage({ kinds: [kind], pageSize: 3 });
    assert.equal(first.decisions.length, 3);
    assert.notEqual(first.nextPageToken, "");
    const all: string[] = [];
    for await (const d of deployer.list({ kinds: [kind], pageSize: 3 })) all.push(d.id);
    assert.deepEqual(all, ids);
    await deployer.cancel(ids[0]!);
    const open: string[] = [];
    for await (const d of deployer.list({ kinds: [kind], statuses: ["OPEN"], pageSize: 2 })) open.push(d.id);
    assert.deepEqual(open, ids.slice(1));
  });
});

describe("errors (token mode)", () => {
  let server: WitnessServer;
  before(async () => {
    server = await WitnessServer.start({
      extraToml: `
[[principals]]
name = "alice"
token_sha256 = "${sha256("alice-token")}"
roles = ["sre"]

[[principals]]
name = "deployer"
token_sha256 = "${sha256("deployer-token")}"
roles = []
`,
    });
  });
  after(async () => {
    await server?.stop();
  });

  test("Unauthenticated without a token or with a wrong one", async () => {
    const none = await server.client().askNoWait("x.y", {}, { authorizedRoles: ["sre"] }).catch((e) => e);
    assert.ok(none instanceof UnauthenticatedError, String(none));
    assert.equal(none.code, "UNAUTHENTICATED");
    const wrong = server.client({ token: "not-a-token" });
    await assert.rejects(wrong.get("0190b7a6-0000-7000-8000-000000000000"), UnauthenticatedError);
  });

  test("a valid token works; a principal who cannot see the decision gets NotFound", async () => {
    const deployer = server.client({ token: "deployer-token" });
    const alice = server.client({ token: "alice-token" });
    const { decision } = await deployer.askNoWait(uniqueKind("tok"), {}, { authorizedRoles: ["dba"] });
    assert.equal(decision.askedBy, "deployer");
    await assert.rejects(alice.answer(decision.id, "approve", "not mine"), NotFoundError);
  });
});

describe("retries", () => {
  test("UNAVAILABLE is retried with back-off until the server is up", async () => {
    const port = await freePort();
    const client = new WitnessClient({
      baseUrl: `http://127.0.0.1:${port}`,
      principal: "deployer",
      retry: { initialDelayMs: 50, maxDelayMs: 200, maxAttempts: 100 },
    });
    // Nothing listens yet: the ask keeps retrying while the server starts.
    const asking = client.askNoWait(uniqueKind("retry"), {}, { authorizedRoles: ["sre"] });
    const server = await WitnessServer.start({ port });
    try {
      const { decision, created } = await within("the retried ask", asking);
      assert.equal(created, true);
      assert.equal(decision.status, "OPEN");
    } finally {
      client.close();
      await server.stop();
    }
  });

  test("UNAVAILABLE surfaces once the attempts are used up", async () => {
    const port = await freePort();
    const client = new WitnessClient({
      baseUrl: `http://127.0.0.1:${port}`,
      retry: { initialDelayMs: 10, maxDelayMs: 20, maxAttempts: 3 },
    });
    const err = await client.get("x").catch((e) => e);
    assert.ok(err instanceof UnavailableError, String(err));
    assert.ok(err.retryable);
  });

  test("every status code maps to its class", () => {
    const cases: [Code, Function][] = [
      [Code.InvalidArgument, InvalidArgumentError],
      [Code.NotFound, NotFoundError],
      [Code.FailedPrecondition, FailedPreconditionError],
      [Code.AlreadyExists, AlreadyExistsError],
      [Code.PermissionDenied, PermissionDeniedError],
      [Code.Unauthenticated, UnauthenticatedError],
      [Code.Unavailable, UnavailableError],
      [Code.ResourceExhausted, ResourceExhaustedError],
    ];
    for (const [code, cls] of cases) {
      const e = toWitnessError(new ConnectError("field: message", code));
      assert.ok(e instanceof cls, `${Code[code]} -> ${e.constructor.name}`);
      assert.equal(e.message, "field: message");
    }
    const slow = toWitnessError(
      new ConnectError("stream consumer too slow; reconnect with after_sequence = 42", Code.ResourceExhausted),
    );
    assert.ok(slow instanceof ResourceExhaustedError);
    assert.equal(slow.afterSequence, 42);
    assert.equal(toWitnessError(new ConnectError("x", Code.Internal)).code, "INTERNAL");
  });
});
