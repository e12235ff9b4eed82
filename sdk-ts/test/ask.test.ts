// ask() against the real server: answered from another client, a
// two-person decision completed by the context provider, a context change.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { answerHint, type Decision, type JsonValue } from "../dist/index.js";
import { WitnessServer, eventually, uniqueKind, within } from "./helpers.js";

const POLICIES = `
[[policies]]
kind = "scram.*"
required_approvals = 2
context_max_age = "30s"
`;

describe("ask", () => {
  let server: WitnessServer;
  before(async () => {
    server = await WitnessServer.start({ extraToml: POLICIES });
  });
  after(async () => {
    await server?.stop();
  });

  test("blocks until another client approves, and returns the closed decision", async () => {
    const deployer = server.client({ principal: "deployer" });
    const alice = server.client({ principal: "alice", roles: ["sre"] });
    let asked: Decision | undefined;
    const waiting = deployer.ask(
      uniqueKind("deploy"),
      { service: "api", version: "1.4.2", tags: ["canary"], ratio: 0.25, dry: false, note: null },
      { authorizedRoles: ["sre"], surfaces: ["console"], onAsked: (d) => (asked = d) },
    );
    const d0 = await eventually("the decision to be asked", () => asked);
    assert.equal(d0.status, "OPEN");
    assert.equal(d0.askedBy, "deployer");
    assert.deepEqual(d0.input, { service: "api", version: "1.4.2", tags: ["canary"], ratio: 0.25, dry: false, note: null });

    const seen = await alice.get(d0.id);
    assert.equal(seen.status, "OPEN");
    const res = await alice.answer(d0.id, "approve", "canary is green", { answer: { ok: true } });
    assert.equal(res.outcome, "CLOSED");

    const closed = await within("ask() to return", waiting);
    assert.equal(closed.id, d0.id);
    assert.equal(closed.status, "APPROVED");
    assert.equal(closed.answers.length, 1);
    assert.equal(closed.answers[0]!.operator, "alice");
    assert.equal(closed.answers[0]!.rationale, "canary is green");
    assert.deepEqual(closed.answers[0]!.answer, { ok: true });
    assert.ok(closed.closedAt instanceof Date);
  });

  test("a rejection returns the closed decision with status REJECTED", async () => {
    const deployer = server.client({ principal: "deployer" });
    const alice = server.client({ principal: "alice", roles: ["sre"] });
    const waiting = deployer.ask(uniqueKind("deploy"), { service: "db" }, {
      authorizedRoles: ["sre"],
      onAsked: (d) => void alice.answer(d.id, "reject", "not during the freeze"),
    });
    const closed = await within("ask() to return", waiting);
    assert.equal(closed.status, "REJECTED");
    assert.equal(closed.answers[0]!.verdict, "reject");
  });

  test("two-person decision completes with a context provider and no user code", async () => {
    // Interval reports are off: the reports after each event must suffice.
    const deployer = server.client({ principal: "deployer", contextReportIntervalMs: 0 });
    const alice = server.client({ principal: "alice", roles: ["sre"] });
    const bob = server.client({ principal: "bob", roles: ["sre"] });
    let calls = 0;
    const world = { cluster: "eu-1", readonly: false, replicas: [1, 2, 3] };
    let asked: Decision | undefined;
    const waiting = deployer.ask("scram.confirm-global-readonly", { reason: "incident 42" }, {
      authorizedRoles: ["sre"],
      context: async () => {
        calls += 1;
        return world;
      },
      onAsked: (d) => (asked = d),
    });
    const d0 = await eventually("the decision to be asked", () => asked);
    assert.equal(d0.requiredApprovals, 2);
    assert.match(d0.contextHash, /^[0-9a-f]{64}$/);

    const first = await alice.answer(d0.id, "approve", "looks right");
    assert.equal(first.outcome, "AWAITING_APPROVALS");
    const firstAt = first.decision.answers[0]!.sequence;

    // The asker's client re-confirms the context after alice's approval.
    await within(
      "the asker's confirmation after the first approval",
      (async () => {
        for await (const ev of bob.watch(d0.id)) {
          if (ev.type === "CONTEXT_CONFIRMED" && ev.sequence > firstAt) return;
        }
      })(),
    );
    const second = await bob.answer(d0.id, "approve", "confirmed");
    assert.equal(second.outcome, "CLOSED");

    const closed = await within("ask() to return", waiting);
    assert.equal(closed.status, "APPROVED");
    assert.deepEqual(closed.answers.map((a) => a.operator), ["alice", "bob"]);
    assert.ok(calls >= 2, `context provider called ${calls} times`);
  });

  test("a changed context closes the decision CONTEXT_CHANGED", async () => {
    const deployer = server.client({ principal: "deployer", contextReportIntervalMs: 100 });
    let world: JsonValue = { primary: "db-1" };
    let asked: Decision | undefined;
    const waiting = deployer.ask("scram.failover", { to: "db-2" }, {
      authorizedRoles: ["sre"],
      context: () => world,
      onAsked: (d) => (asked = d),
    });
    await eventually("the decision to be asked", () => asked);
    world = { primary: "db-3" };
    const closed = await within("ask() to return", waiting);
    assert.equal(closed.status, "CONTEXT_CHANGED");
    assert.equal(closed.closedBy, "deployer");
  });

  test("a changed context is reported on the next decision event too", async () => {
    const deployer = server.client({ principal: "deployer", contextReportIntervalMs: 0 });
    const alice = server.client({ principal: "alice", roles: ["sre"] });
    let world: JsonValue = { flag: "on" };
    const waiting = deployer.ask(uniqueKind("flags"), { flip: "off" }, {
      authorizedRoles: ["sre"],
      context: () => world,
      onAsked: (d) => {
        world = { flag: "off" };
        void alice.ack(d.id, "console");
      },
    });
    const closed = await within("ask() to return", waiting);
    assert.equal(closed.status, "CONTEXT_CHANGED");
  });

  test("ask is idempotent by requestId; askNoWait returns at once", async () => {
    const deployer = server.client({ principal: "deployer" });
    const kind = uniqueKind("idem");
    const requestId = "req-" + kind;
    const a = await deployer.askNoWait(kind, { n: 1 }, { authorizedRoles: ["sre"], requestId });
    const b = await deployer.askNoWait(kind, { n: 1 }, { authorizedRoles: ["sre"], requestId });
    assert.equal(a.created, true);
    assert.equal(b.created, false);
    assert.equal(a.decision.id, b.decision.id);
    const cancelled = await deployer.cancel(a.decision.id, "changed my mind");
    assert.equal(cancelled.status, "CANCELLED");
    assert.equal(cancelled.closeReason, "changed my mind");
    // ask() with the same request id returns the closed decision at once.
    const again = await deployer.ask(kind, { n: 1 }, { authorizedRoles: ["sre"], requestId });
    assert.equal(again.status, "CANCELLED");
  });

  test("onCreated gets the open decision once, before ask() returns, and answerHint names its id", async () => {
    const deployer = server.client({ principal: "deployer" });
    const alice = server.client({ principal: "alice", roles: ["sre"] });
    const kind = uniqueKind("deploy");
    const created: Decision[] = [];
    const asked: Decision[] = [];
    let returned = false;
    const waiting = deployer
      .ask(kind, { service: "api" }, {
        authorizedRoles: ["sre", "dba"],
        onCreated: (d) => created.push(d),
        onAsked: (d) => asked.push(d),
      })
      .finally(() => (returned = true));
    const d0 = await eventually("onCreated to be called", () => created[0]);
    assert.equal(d0.status, "OPEN");
    assert.equal(d0.kind, kind);
    assert.equal(d0.askedBy, "deployer");
    assert.equal(returned, false, "ask() returned before anyone answered");
    assert.equal(
      answerHint(d0),
      `waiting for a human to decide ${kind} (decision ${d0.id}); answer it with:\n` +
        `  witness answer ${d0.id} approve --rationale "..." --as NAME --roles sre`,
    );
    await alice.answer(d0.id, "approve", "canary is green");
    const closed = await within("ask() to return", waiting);
    assert.equal(closed.id, d0.id);
    assert.equal(closed.status, "APPROVED");
    assert.equal(created.length, 1);
    assert.deepEqual(asked.map((d) => d.id), [d0.id]); // the earlier name still works
  });

  test("an onCreated that throws ends ask() without waiting; the decision stays open", async () => {
    const deployer = server.client({ principal: "deployer" });
    let id = "";
    await assert.rejects(
      within(
        "ask() to reject",
        deployer.ask(uniqueKind("deploy"), {}, {
          authorizedRoles: ["sre"],
          onCreated: (d) => {
            id = d.id;
            throw new Error("no terminal to print to");
          },
        }),
      ),
      /no terminal to print to/,
    );
    assert.equal((await deployer.get(id)).status, "OPEN");
    await deployer.cancel(id, "test over");
  });

  test("answerHint names the server unless it is the CLI's default, the token, and escapes the kind", () => {
    const d = { id: "0193-abc", kind: "deploy.x\n\u001b[31mfake\u202e", authorizedRoles: [] };
    assert.equal(
      answerHint(d, { server: "http://127.0.0.1:50051/" }),
      "waiting for a human to decide deploy.x\\n\\x1b[31mfake\\u{202e} (decision 0193-abc); answer it with:\n" +
        '  witness answer 0193-abc approve --rationale "..." --as NAME --roles ROLE',
    );
    assert.ok(
      answerHint(d, { server: "https://w.example:443", token: true }).endsWith(
        ' approve --rationale "..." --token TOKEN --server https://w.example:443',
      ),
    );
  });

  test("an aborted ask stops waiting and leaves the decision open", async () => {
    const deployer = server.client({ principal: "deployer" });
    const ac = new AbortController();
    let asked: Decision | undefined;
    const waiting = deployer.ask(uniqueKind("abort"), {}, {
      authorizedRoles: ["sre"],
      signal: ac.signal,
      onAsked: (d) => (asked = d),
    });
    const d0 = await eventually("the decision to be asked", () => asked);
    ac.abort(new Error("gave up"));
    await assert.rejects(within("ask() to reject", waiting), /gave up/);
    assert.equal((await deployer.get(d0.id)).status, "OPEN");
  });
});
