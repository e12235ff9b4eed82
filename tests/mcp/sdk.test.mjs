// witness's /mcp through the official TypeScript SDK (@modelcontextprotocol/sdk,
// pinned in package-lock.json) and its StreamableHTTPClientTransport, with
// operators answering through the real `witness` CLI.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { start, cli, until, TOKENS } from "./witness.mjs";

let server;
before(async () => {
  server = await start();
});
after(async () => {
  await server?.stop();
});

async function connect(token = TOKENS.agent) {
  const client = new Client({ name: "witness-test", version: "1.0.0" });
  const transport = new StreamableHTTPClientTransport(new URL(server.url), {
    requestInit: { headers: { Authorization: `Bearer ${token}` } },
  });
  await client.connect(transport);
  return client;
}

const idIn = (message) => message.match(/decision ([0-9a-f-]{36})/)?.[1];

test("lists the four tools with input and output schemas and annotations", async () => {
  const client = await connect();
  try {
    const { tools } = await client.listTools();
    const byName = Object.fromEntries(tools.map((t) => [t.name, t]));
    assert.deepEqual(Object.keys(byName).sort(), [
      "get_decision",
      "list_decisions",
      "request_approval",
      "wait_for_decision",
    ]);
    for (const t of tools) {
      assert.equal(t.inputSchema.type, "object", t.name);
      assert.equal(t.outputSchema?.type, "object", t.name);
      assert.ok(t.description.length > 20, t.name);
    }
    assert.deepEqual(byName.request_approval.inputSchema.required.sort(), ["input", "kind"]);
    assert.equal(byName.request_approval.annotations.readOnlyHint, false);
    for (const n of ["wait_for_decision", "get_decision", "list_decisions"]) {
      assert.equal(byName[n].annotations.readOnlyHint, true, n);
    }
  } finally {
    await client.close();
  }
});

test("request_approval waits for the CLI's approval, with progress for the delivery and the vote", async () => {
  const client = await connect();
  const progress = [];
  try {
    // Listed first, so the SDK checks each result against its output schema.
    await client.listTools();
    const call = client.callTool(
      {
        name: "request_approval",
        arguments: {
          kind: "deploy.production",
          input: { service: "checkout", version: "2.4.1" },
          authorized_roles: ["sre"],
          request_id: "ts-approve-1",
        },
      },
      undefined,
      { onprogress: (p) => progress.push(p), timeout: 60_000 },
    );
    const id = await until("the first progress notification", () => progress.map((p) => idIn(p.message ?? "")).find(Boolean));
    await cli(server.port, "alice", ["ack", id, "--surface", "console"]);
    await until("the delivery's progress notification", () => progress.some((p) => /^delivered: alice/.test(p.message)));
    await cli(server.port, "alice", ["approve", id, "--rationale", "canary is green"]);
    const result = await call;
    assert.notEqual(result.isError, true, JSON.stringify(result));
    const s = result.structuredContent;
    assert.equal(s.decision_id, id);
    assert.equal(s.status, "APPROVED");
    assert.deepEqual(s.answers, [{ operator: "alice", verdict: "APPROVE", rationale: "canary is green", answer: null }]);
    assert.ok(s.receipt?.body.includes(id), "a signed receipt comes with the outcome");
    assert.equal(result.content[0].text, "APPROVED by alice: canary is green");
    const messages = progress.map((p) => p.message);
    assert.ok(messages.some((m) => /^vote: alice approved \(1 of 1 approvals\): canary is green/.test(m)), messages.join("\n"));
    const values = progress.map((p) => p.progress);
    assert.deepEqual(values, [...values].sort((a, b) => a - b), "progress only grows");

    // The same request_id is the same decision, already closed.
    const again = await client.callTool({
      name: "request_approval",
      arguments: {
        kind: "deploy.production",
        input: { service: "checkout", version: "2.4.1" },
        authorized_roles: ["sre"],
        request_id: "ts-approve-1",
      },
    });
    assert.equal(again.structuredContent.decision_id, id);
    assert.equal(again.structuredContent.status, "APPROVED");
  } finally {
    await client.close();
  }
});

test("a cancelled call (AbortController) leaves the decision CANCELLED", async () => {
  const client = await connect();
  const progress = [];
  const abort = new AbortController();
  try {
    const call = client.callTool(
      {
        name: "request_approval",
        arguments: { kind: "deploy.staging", input: { why: "try it" }, authorized_roles: ["sre"] },
      },
      undefined,
      { onprogress: (p) => progress.push(p), signal: abort.signal, timeout: 60_000 },
    );
    const id = await until("the first progress notification", () => progress.map((p) => idIn(p.message ?? "")).find(Boolean));
    abort.abort("changed my mind");
    await assert.rejects(call);
    const status = await until("the decision to close", async () => {
      const out = JSON.parse(await cli(server.port, "alice", ["get", id, "--json"]));
      const d = out.decision ?? out;
      return d.status !== "OPEN" && d.status;
    });
    assert.equal(status, "CANCELLED");
    const got = await client.callTool({ name: "get_decision", arguments: { decision_id: id } });
    assert.equal(got.structuredContent.status, "CANCELLED");
    assert.equal(got.structuredContent.close_reason, "the agent withdrew the request");
    assert.equal(got.content[0].text, "CANCELLED: the agent withdrew the request");
  } finally {
    await client.close();
  }
});

test("a dropped connection leaves the decision open, and wait_for_decision picks it up", async () => {
  const first = await connect();
  const progress = [];
  first
    .callTool(
      {
        name: "request_approval",
        arguments: { kind: "deploy.canary", input: { step: 1 }, authorized_roles: ["sre"] },
      },
      undefined,
      { onprogress: (p) => progress.push(p), timeout: 60_000 },
    )
    .catch(() => {});
  const id = await until("the first progress notification", () => progress.map((p) => idIn(p.message ?? "")).find(Boolean));
  // Close the transport without cancelling the call (as a crash would).
  await first.transport.close();
  const second = await connect();
  try {
    await second.listTools(); // results checked against the output schemas
    const open = await second.callTool({ name: "wait_for_decision", arguments: { decision_id: id, timeout: "300ms" } });
    assert.equal(open.structuredContent.status, "OPEN");
    const waiting = second.callTool({ name: "wait_for_decision", arguments: { decision_id: id } }, undefined, {
      timeout: 60_000,
    });
    await cli(server.port, "bob", ["reject", id, "--rationale", "not during the freeze"]);
    const done = await waiting;
    assert.equal(done.structuredContent.status, "REJECTED");
    assert.equal(done.content[0].text, "REJECTED by bob: not during the freeze");
  } finally {
    await second.close();
  }
});

test("refusals come back as tool errors an agent can read", async () => {
  const client = await connect();
  try {
    const denied = await client.callTool({
      name: "request_approval",
      arguments: { kind: "payments.send", input: { amount: 10 }, authorized_roles: ["finance"] },
    });
    assert.equal(denied.isError, true);
    assert.match(denied.content[0].text, /^PERMISSION_DENIED: kind: agent may not ask about "payments.send"/);
    await client.listTools();
    const unseen = await connect(TOKENS.stranger);
    try {
      const listed = await client.callTool({ name: "list_decisions", arguments: {} });
      const someId = listed.structuredContent.decisions[0].decision_id;
      const nope = await unseen.callTool({ name: "get_decision", arguments: { decision_id: someId } });
      assert.equal(nope.isError, true);
      assert.match(nope.content[0].text, /^NOT_FOUND: /);
      const theirs = await unseen.callTool({ name: "list_decisions", arguments: {} });
      assert.deepEqual(theirs.structuredContent.decisions, []);
    } finally {
      await unseen.close();
    }
  } finally {
    await client.close();
  }
});
