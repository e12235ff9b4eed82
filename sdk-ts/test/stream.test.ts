// stream() and watch() across a server restart (SIGKILL, then start again on
// the same port and database) and a slow consumer cut off by the server.
import assert from "node:assert/strict";
import { test } from "node:test";
import { type Decision, type DecisionEvent, type WitnessClient } from "../dist/index.js";
import { WitnessServer, eventually, freePort, uniqueKind, within } from "./helpers.js";

/** Consumes a stream in the background into an array. */
function collect(iterable: AsyncIterable<DecisionEvent>, sink: DecisionEvent[]): Promise<unknown> {
  return (async () => {
    for await (const ev of iterable) sink.push(ev);
  })().catch((err: unknown) => err);
}

async function askMany(client: WitnessClient, kind: string, n: number): Promise<Decision[]> {
  const out: Decision[] = [];
  for (let i = 0; i < n; i++) {
    out.push((await client.askNoWait(kind, { i }, { authorizedRoles: ["sre"], surfaces: ["console"] })).decision);
  }
  return out;
}

function isAbort(err: unknown): boolean {
  return err instanceof Error && err.name === "AbortError";
}

function assertContiguous(seqs: number[], from: number, to: number): void {
  const expected = Array.from({ length: to - from + 1 }, (_, i) => from + i);
  assert.deepEqual(seqs, expected, "every event once, in order, no gap");
}

test("stream survives a server restart without losing or repeating events", async () => {
  const port = await freePort();
  const server = await WitnessServer.start({ port });
  const deployer = server.client({ principal: "deployer" });
  const alice = server.client({ principal: "alice", roles: ["sre"] });
  const console_ = server.client({ principal: "console", roles: ["sre"] });
  const ac = new AbortController();
  try {
    const kind = uniqueKind("restart");
    const before = await askMany(deployer, kind, 2);

    const events: DecisionEvent[] = [];
    const done = collect(console_.stream({ includeOpen: true, signal: ac.signal }), events);
    const end = await eventually("SNAPSHOT_END", () => events.find((e) => e.type === "SNAPSHOT_END"));
    const snapshot = events.filter((e) => e.snapshot && e.type !== "SNAPSHOT_END");
    assert.deepEqual(snapshot.map((e) => e.decision?.id), before.map((d) => d.id));
    assert.ok(snapshot.every((e) => e.type === "CREATED"));

    await askMany(deployer, kind, 3);
    await eventually("three live events", () => (events.filter((e) => !e.snapshot).length >= 3 ? true : undefined));

    await server.kill();
    // While the server is down the stream keeps trying; ask() would too.
    await server.restart();
    const after = await askMany(deployer, kind, 3);
    await alice.answer(before[0]!.id, "approve", "after the restart");
    const last = (await alice.get(before[0]!.id)).lastSequence;

    await eventually("every event after the restart", () =>
      events.some((e) => e.sequence === last && !e.snapshot) ? true : undefined,
    );
    const live = events.filter((e) => !e.snapshot);
    assertContiguous(live.map((e) => e.sequence), end.sequence + 1, last);
    assert.deepEqual(
      live.slice(3, 6).map((e) => e.decision?.id),
      after.map((d) => d.id),
    );
    assert.deepEqual(live.slice(-2).map((e) => e.type), ["ANSWERED", "APPROVED"]);

    // A second subscriber resuming from the marker sees the same events.
    const resumed: DecisionEvent[] = [];
    const ac2 = new AbortController();
    const done2 = collect(console_.stream({ afterSequence: end.sequence, signal: ac2.signal }), resumed);
    await eventually("the resumed stream to catch up", () => (resumed.at(-1)?.sequence === last ? true : undefined));
    assert.deepEqual(resumed.map((e) => e.sequence), live.map((e) => e.sequence));
    ac2.abort();
    await done2;
    ac.abort();
    assert.ok(isAbort(await done), "the stream ends with the abort");
  } finally {
    ac.abort();
    await server.stop();
  }
});

test("ask() keeps waiting across a server restart", async () => {
  const port = await freePort();
  const server = await WitnessServer.start({ port });
  try {
    const deployer = server.client({ principal: "deployer" });
    const alice = server.client({ principal: "alice", roles: ["sre"] });
    let asked: Decision | undefined;
    const waiting = deployer.ask(uniqueKind("restart"), { step: "migrate" }, {
      authorizedRoles: ["sre"],
      onAsked: (d) => (asked = d),
    });
    const d0 = await eventually("the decision to be asked", () => asked);
    await server.restart();
    await alice.answer(d0.id, "approve", "go ahead");
    const closed = await within("ask() to return after the restart", waiting, 15_000);
    assert.equal(closed.status, "APPROVED");
  } finally {
    await server.stop();
  }
});

test("watch yields the current state, then each change, and ends after the terminal event", async () => {
  const server = await WitnessServer.start();
  try {
    const deployer = server.client({ principal: "deployer" });
    const alice = server.client({ principal: "alice", roles: ["sre"] });
    const { decision } = await deployer.askNoWait(uniqueKind("watch"), {}, { authorizedRoles: ["sre"] });
    const seen: DecisionEvent[] = [];
    const done = (async () => {
      for await (const ev of alice.watch(decision.id)) {
        seen.push(ev);
        if (ev.type === "CREATED") await alice.ack(decision.id, "console");
        if (ev.type === "DELIVERED") await alice.answer(decision.id, "reject", "no");
      }
    })();
    await within("watch to end", done);
    assert.deepEqual(seen.map((e) => e.type), ["CREATED", "DELIVERED", "ANSWERED", "REJECTED"]);
    assert.equal(seen[0]!.snapshot, true);
    assert.equal(seen.at(-1)!.decision?.status, "REJECTED");
  } finally {
    await server.stop();
  }
});

test("a consumer too slow for the server resumes by sequence (RESOURCE_EXHAUSTED)", async () => {
  // A tiny ring: a subscriber that does not read is cut off quickly.
  const server = await WitnessServer.start({ extraToml: "[streams]\nring = 2\n" });
  const deployer = server.client({ principal: "deployer" });
  const reader = server.client({ principal: "console", roles: ["sre"] });
  const ac = new AbortController();
  const reconnects: unknown[] = [];
  try {
    const kind = uniqueKind("slow");
    // A non-empty log: resuming "after 0" is not expressible (0 means live).
    await deployer.askNoWait(uniqueKind("other"), {}, { authorizedRoles: ["sre"] });
    const it = reader
      .stream({ includeOpen: true, kinds: [kind], signal: ac.signal, onReconnect: (err) => reconnects.push(err) })
      [Symbol.asyncIterator]();
    const first = await within("SNAPSHOT_END", it.next());
    assert.equal(first.value?.type, "SNAPSHOT_END");
    const from = first.value!.sequence;

    // Stop reading while many events are published: HTTP/2 flow control
    // fills up, the server's subscriber falls behind its ring and is ended.
    const asked = await Promise.all(
      Array.from({ length: 8 }, () => askMany(deployer, kind, 60).then((ds) => ds.length)),
    );
    const total = asked.reduce((a, b) => a + b, 0);
    const seqs: number[] = [];
    while (seqs.length < total) {
      const r = await within("the next event", it.next());
      assert.equal(r.done, false);
      seqs.push(r.value!.sequence);
    }
    await it.return?.();
    assert.equal(new Set(seqs).size, seqs.length, "no duplicates");
    assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), "in order");
    assertContiguous(seqs, from + 1, from + total);
    assert.ok(
      reconnects.some((e) => (e as { code?: string }).code === "RESOURCE_EXHAUSTED"),
      `expected a RESOURCE_EXHAUSTED reconnect, got ${reconnects.map(String).join("; ") || "none"}`,
    );
  } finally {
    ac.abort();
    await server.stop();
  }
});

test("close() ends the client's open streams", async () => {
  const server = await WitnessServer.start();
  try {
    const client = server.client({ principal: "console", roles: ["sre"] });
    const events: DecisionEvent[] = [];
    const done = collect(client.stream({ includeOpen: true }), events);
    await eventually("SNAPSHOT_END", () => events.find((e) => e.type === "SNAPSHOT_END"));
    client.close();
    assert.ok(isAbort(await within("the stream to end", done)));
    await assert.rejects(client.get("x"), (e: Error) => e.name === "AbortError");
  } finally {
    await server.stop();
  }
});

test("afterSequence 0 replays the log from the first event; beyond the head is OUT_OF_RANGE", async () => {
  const server = await WitnessServer.start({});
  const deployer = server.client({ principal: "deployer" });
  const alice = server.client({ principal: "alice", roles: ["sre"] });
  const ac = new AbortController();
  try {
    const kind = uniqueKind("zero");
    const made = await askMany(deployer, kind, 2);
    const events: DecisionEvent[] = [];
    const done = collect(alice.stream({ afterSequence: 0, signal: ac.signal }), events);
    await eventually("two events", () => (events.length >= 2 ? true : undefined));
    assert.deepEqual(
      events.slice(0, 2).map((e) => e.sequence),
      [1, 2],
    );
    assert.deepEqual(
      events.slice(0, 2).map((e) => e.decision?.id),
      made.map((d) => d.id),
    );
    assert.ok(events.every((e) => !e.snapshot));
    ac.abort();
    assert.ok(isAbort(await done));

    const head = made[1]!.lastSequence;
    const err = await collect(alice.stream({ afterSequence: head + 3 }), []);
    assert.ok(err instanceof Error, String(err));
    assert.equal((err as { code?: string }).code, "OUT_OF_RANGE", String(err));
    assert.match((err as Error).message, new RegExp(`log head ${head}`));
  } finally {
    ac.abort();
    await server.stop();
  }
});
