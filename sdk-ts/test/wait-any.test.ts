// waitAny(ids): the first of several decisions to close, over one stream
// that resumes across a server restart (SIGKILL, same port and database).
import assert from "node:assert/strict";
import { test } from "node:test";
import { InvalidArgumentError, type DecisionEvent } from "../dist/index.js";
import { WitnessServer, eventually, freePort, uniqueKind, within } from "./helpers.js";

test("waitAny resolves with the first of several to close, across a server restart", async () => {
  const port = await freePort();
  const server = await WitnessServer.start({ port });
  try {
    const deployer = server.client({ principal: "deployer" });
    const alice = server.client({ principal: "alice", roles: ["sre"] });
    const waiter = server.client({ principal: "deployer" });
    const kind = uniqueKind("any");
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      ids.push((await deployer.askNoWait(kind, { i }, { authorizedRoles: ["sre"] })).decision.id);
    }
    const other = (await deployer.askNoWait(kind, { i: 9 }, { authorizedRoles: ["sre"] })).decision.id;
    // Count SNAPSHOT_END markers: the waiter is subscribed after the first,
    // and a resume (not a new subscription) adds none.
    let snapshots = 0;
    const original = waiter.stream.bind(waiter);
    waiter.stream = (options) =>
      (async function* () {
        for await (const ev of original(options) as AsyncIterable<DecisionEvent>) {
          if (ev.type === "SNAPSHOT_END") snapshots++;
          yield ev;
        }
      })();
    const waiting = waiter.waitAny(ids);
    await eventually("the waiter to subscribe", () => (snapshots === 1 ? true : undefined));
    await alice.answer(other, "approve", "not one of them");
    await server.kill();
    await server.restart();
    await alice.answer(ids[1]!, "reject", "after the restart");
    const first = await within("waitAny after the restart", waiting, 30_000);
    assert.equal(first.id, ids[1]);
    assert.equal(first.status, "REJECTED");
    assert.equal(snapshots, 1, "resumed after the last event, no new snapshot");
    // One already closed counts; an empty set is refused naming `ids`.
    assert.equal((await waiter.waitAny(ids)).id, ids[1]);
    await assert.rejects(waiter.waitAny([]), (err: unknown) => {
      assert.ok(err instanceof InvalidArgumentError);
      assert.equal(err.field, "ids");
      return true;
    });
  } finally {
    await server.stop();
  }
});
