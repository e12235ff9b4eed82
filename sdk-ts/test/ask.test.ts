// ask() against the real server: answered from another client, a
// two-person decision completed by the context provider, a context change.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { type Decision, type JsonValue } from "../dist/index.js";
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
