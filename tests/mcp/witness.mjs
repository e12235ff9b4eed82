// Starts the real witness binary (WITNESS_BIN) on port 0 with a fresh SQLite
// store and principals for an agent and three operators, and runs the
// `witness` CLI as an operator. Shared by the TypeScript SDK tests and the
// conformance runner.
import { spawn, execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

export const BIN = process.env.WITNESS_BIN ?? new URL("../../target/debug/witness", import.meta.url).pathname;

export const TOKENS = {
  agent: "agent-token-0123456789",
  alice: "alice-token-0123456789",
  bob: "bob-token-0123456789",
  carol: "carol-token-0123456789",
  stranger: "stranger-token-0123456789",
};

const sha = (t) => createHash("sha256").update(t).digest("hex");

function config(dir, extra) {
  return `listen = "127.0.0.1:0"
[store]
url = "sqlite://${join(dir, "witness.db")}"
[receipts]
key_file = "${join(dir, "receipt.key")}"
[[principals]]
name = "agent"
token_sha256 = "${sha(TOKENS.agent)}"
roles = []
can_ask = ["deploy.*", "db.*"]
[[principals]]
name = "alice"
token_sha256 = "${sha(TOKENS.alice)}"
roles = ["sre"]
[[principals]]
name = "bob"
token_sha256 = "${sha(TOKENS.bob)}"
roles = ["sre"]
[[principals]]
name = "carol"
token_sha256 = "${sha(TOKENS.carol)}"
roles = ["dba"]
[[principals]]
name = "stranger"
token_sha256 = "${sha(TOKENS.stranger)}"
roles = ["finance"]
[[policies]]
kind = "db.*"
required_approvals = 2
${extra ?? ""}
`;
}

/** Starts witness; resolves to { url, port, stop() } once it listens. */
export async function start({ extra, dev } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "witness-mcp-"));
  const file = join(dir, "witness.toml");
  writeFileSync(
    file,
    dev ? `listen = "127.0.0.1:0"\n[store]\nurl = "sqlite://${join(dir, "witness.db")}"\n[receipts]\nkey_file = "${join(dir, "receipt.key")}"\n` : config(dir, extra),
  );
  const child = spawn(BIN, ["serve", "--config", file], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, WITNESS_LOG: process.env.WITNESS_LOG ?? "warn" },
  });
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`witness did not start:\n${stderr}`)), 30_000);
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/witness listening on 127\.0\.0\.1:(\d+)/);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.on("exit", (code) => reject(new Error(`witness exited ${code}:\n${stderr}`)));
  });
  const stop = async () => {
    child.kill("SIGTERM");
    await new Promise((r) => (child.exitCode !== null ? r() : child.on("exit", r)));
    rmSync(dir, { recursive: true, force: true });
  };
  return { port, url: `http://127.0.0.1:${port}/mcp`, stop, stderr: () => stderr };
}

/** Runs the witness CLI as `who` against the server on `port`. */
export async function cli(port, who, args) {
  const { stdout } = await promisify(execFile)(BIN, [...args, "--server", `127.0.0.1:${port}`], {
    env: { ...process.env, WITNESS_TOKEN: TOKENS[who] },
  });
  return stdout;
}

/** Polls `check` until it returns a truthy value, or fails after `ms`. */
export async function until(what, check, ms = 20_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
