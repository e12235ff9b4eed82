// connect-es (the SDK's own stack) over the Connect protocol, not gRPC:
// HTTP/1.1, JSON and binary, unary and server streaming, against the real
// server's listen port, and a wrong token refused as unauthenticated.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { Status, Verdict, WitnessService } from "../dist/gen/witness/v1/witness_pb.js";
import { WitnessServer, sha256, uniqueKind, within } from "./helpers.js";

function headers(h: Record<string, string>): Interceptor {
  return (next) => (req) => {
    for (const [k, v] of Object.entries(h)) req.header.set(k, v);
    return next(req);
  };
}

function connectClient(server: WitnessServer, h: Record<string, string>, useBinaryFormat: boolean) {
  const transport = createConnectTransport({
    baseUrl: server.url,
    httpVersion: "1.1",
    useBinaryFormat,
    interceptors: [headers(h)],
  });
  return createClient(WitnessService, transport);
}

describe("Connect protocol (dev mode)", () => {
  let server: WitnessServer;
  before(async () => {
    server = await WitnessServer.start();
  });
  after(async () => {
    await server?.stop();
  });

  for (const binary of [false, true]) {
    test(`ask, watch and answer over Connect ${binary ? "binary" : "JSON"}`, async () => {
      const deployer = connectClient(server, { "x-witness-principal": "deployer" }, binary);
      const alice = connectClient(server, { "x-witness-principal": "alice", "x-witness-roles": "sre" }, binary);
      const kind = uniqueKind("deploy");
      const asked = await deployer.ask({
        kind,
        input: { kind: { case: "structValue", value: { fields: { service: { kind: { case: "stringValue", value: "api" } } } } } },
        authorizedRoles: ["sre"],
      });
      assert.equal(asked.created, true);
      const id = asked.decision!.id;
      assert.equal(asked.decision!.status, Status.OPEN);
      assert.equal(asked.decision!.askedBy, "deployer");

      // Server streaming: follow the decision until it closes.
      const seen: Status[] = [];
      const watching = (async () => {
        for await (const res of deployer.watchDecision({ decisionId: id })) {
          seen.push(res.event!.decision!.status);
          if (res.event!.decision!.status !== Status.OPEN) break;
        }
      })();
      const listed = await alice.listDecisions({ statuses: [Status.OPEN] });
      assert.ok(listed.decisions.some((d) => d.id === id));
      const answered = await alice.answer({ decisionId: id, verdict: Verdict.APPROVE, rationale: "fine" });
      assert.equal(answered.decision!.status, Status.APPROVED);
      await within("the watch to see the close", watching);
      assert.equal(seen.at(-1), Status.APPROVED);
    });
  }

  test("bad input is a ConnectError naming the field", async () => {
    const deployer = connectClient(server, { "x-witness-principal": "deployer" }, false);
    await assert.rejects(
      deployer.ask({ kind: "", authorizedRoles: ["sre"] }),
      (e: unknown) => {
        const ce = ConnectError.from(e);
        assert.equal(ce.code, Code.InvalidArgument);
        assert.match(ce.rawMessage, /kind/);
        return true;
      },
    );
  });
});

describe("Connect protocol (token mode)", () => {
  let server: WitnessServer;
  const token = "tok-svc-0123456789abcdef";
  before(async () => {
    server = await WitnessServer.start({
      extraToml: `[[principals]]\nname = "svc"\ntoken_sha256 = "${sha256(token)}"\n`,
    });
  });
  after(async () => {
    await server?.stop();
  });

  test("a wrong token is unauthenticated, the right one is served", async () => {
    const wrong = connectClient(server, { authorization: "Bearer tok-wrong-value-000000" }, false);
    await assert.rejects(wrong.listDecisions({}), (e: unknown) => {
      assert.equal(ConnectError.from(e).code, Code.Unauthenticated);
      return true;
    });
    const right = connectClient(server, { authorization: `Bearer ${token}` }, false);
    const asked = await right.ask({ kind: uniqueKind("deploy"), authorizedRoles: ["sre"] });
    assert.equal(asked.decision!.askedBy, "svc");
  });
});
