// A function as `token`: called for every call and stream start, so a
// short-lived token is always current; one that throws fails the call
// before anything is sent.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { TokenProviderError, UnauthenticatedError, WitnessClient } from "../dist/index.js";
import { WitnessServer, freePort, sha256, uniqueKind, within } from "./helpers.js";

describe("token provider", () => {
  let server: WitnessServer;
  before(async () => {
    server = await WitnessServer.start({
      extraToml: `
[[principals]]
name = "agent-a"
token_sha256 = "${sha256("token-a")}"
roles = []

[[principals]]
name = "agent-b"
token_sha256 = "${sha256("token-b")}"
roles = []
`,
    });
  });
  after(async () => {
    await server?.stop();
  });

  test("is called per call and per stream start; each call carries its answer", async () => {
    let calls = 0;
    const client = server.client({
      token: () => {
        calls++;
        return calls === 1 ? "token-a" : "token-b";
      },
    });
    assert.equal(calls, 0);
    const first = await client.askNoWait(uniqueKind("tp"), 1, { authorizedRoles: ["sre"] });
    const second = await client.askNoWait(uniqueKind("tp"), 2, { authorizedRoles: ["sre"] });
    assert.deepEqual([first.decision.askedBy, second.decision.askedBy], ["agent-a", "agent-b"]);
    assert.equal(calls, 2);
    assert.equal((await client.get(second.decision.id)).askedBy, "agent-b");
    assert.equal(calls, 3);
    for await (const ev of client.watch(second.decision.id)) {
      assert.equal(ev.decision?.id, second.decision.id);
      break;
    }
    assert.equal(calls, 4);
    client.close();
  });

  test("may be async", async () => {
    let calls = 0;
    const client = server.client({
      token: async () => {
        calls++;
        await new Promise((r) => setTimeout(r, 1));
        return calls === 1 ? "token-a" : "token-b";
      },
    });
    const first = await client.askNoWait(uniqueKind("tp"), 1, { authorizedRoles: ["sre"] });
    const second = await client.askNoWait(uniqueKind("tp"), 2, { authorizedRoles: ["sre"] });
    assert.deepEqual([first.decision.askedBy, second.decision.askedBy], ["agent-a", "agent-b"]);
    assert.equal(calls, 2);
    client.close();
  });

  test("one that throws or rejects fails the call with TokenProviderError", async () => {
    const providers = [
      () => {
        throw new Error("token file unreadable");
      },
      async () => {
        throw new Error("token file unreadable");
      },
    ];
    for (const token of providers) {
      const client = server.client({ token });
      const err = await client.askNoWait(uniqueKind("tp"), 1, { authorizedRoles: ["sre"] }).catch((e) => e);
      assert.ok(err instanceof TokenProviderError, String(err));
      assert.ok(err instanceof UnauthenticatedError);
      assert.match(err.message, /token provider failed: token file unreadable/);
      assert.ok(err.cause instanceof Error);
      client.close();
    }
    const empty = server.client({ token: () => "" });
    await assert.rejects(empty.get("0190b7a6-0000-7000-8000-000000000000"), TokenProviderError);
    empty.close();
  });

  test("a failing provider is not retried: nothing is sent", async () => {
    // Nothing listens: a call that went out would retry UNAVAILABLE.
    const client = new WitnessClient({
      baseUrl: `http://127.0.0.1:${await freePort()}`,
      retry: { initialDelayMs: 1000, maxDelayMs: 1000, maxAttempts: 100 },
      token: () => {
        throw new Error("no token");
      },
    });
    await within("the failed call", assert.rejects(client.get("0190b7a6-0000-7000-8000-000000000000"), TokenProviderError), 3000);
    client.close();
  });
});
