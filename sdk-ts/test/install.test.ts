// The README's "Install" block runs as written: a fresh project outside the
// repository installs this package from its directory (npm builds dist/ with
// the `prepare` script), runs the README's quickstart with tsx against the
// real server, and prints the approver once alice approves.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { type Decision } from "../dist/index.js";
import { WitnessServer, eventually, within } from "./helpers.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const README = readFileSync(join(ROOT, "README.md"), "utf8");

/** The fenced block of `lang` right after `<!-- NAME -->`. */
function block(name: string, lang: string): string {
  const marker = `<!-- ${name} -->\n\`\`\`${lang}\n`;
  const start = README.indexOf(marker);
  assert.ok(start >= 0, `README.md lacks ${JSON.stringify(marker)}`);
  const body = README.slice(start + marker.length);
  return body.slice(0, body.indexOf("```"));
}

/** The environment minus WITNESS_TOKEN: the example runs against a dev-mode server. */
function withoutToken(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.WITNESS_TOKEN;
  return env;
}

test("the README's install block installs the SDK into a fresh project and runs the example", { timeout: 600_000 }, async () => {
  const server = await WitnessServer.start();
  const dir = mkdtempSync(join(tmpdir(), "witness-sdk-install-"));
  const alice = server.client({ principal: "alice", roles: ["sre"] });
  const app = join(dir, "witness-app");
  mkdirSync(app);
  writeFileSync(join(app, "app.ts"), block("example:quickstart", "ts").replaceAll("http://127.0.0.1:50051", server.url));
  const script = block("install:sh", "sh").replace("../witness/sdk-ts", JSON.stringify(ROOT));
  const child = spawn("bash", ["-euo", "pipefail", "-c", script], {
    cwd: dir,
    env: withoutToken(),
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let code: number | null | undefined;
  child.stdout.setEncoding("utf8").on("data", (s: string) => (out += s));
  child.stderr.setEncoding("utf8").on("data", (s: string) => (out += s));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (c) => resolve((code = c))));
  try {
    const asked = await eventually<Decision>(
      "the installed example to ask deploy.production",
      async () => {
        if (code !== undefined) throw new Error(`the install block exited with ${code} before asking\n${out}`);
        for await (const d of alice.list({ statuses: ["OPEN"], kinds: ["deploy.production"] })) return d;
        return undefined;
      },
      540_000,
    );
    await alice.answer(asked.id, "approve", "canary is green");
    assert.equal(await within("the example to exit", exited, 30_000), 0, out);
    assert.match(out, /approved by alice: canary is green/, out);
    // While it waited it printed the decision's id and how to answer it.
    assert.ok(
      out.includes(
        `waiting for a human to decide deploy.production (decision ${asked.id}); answer it with:\n` +
          `  witness answer ${asked.id} approve --rationale "..." --as NAME --roles sre\n`,
      ),
      out,
    );
    // The package resolved from the project is the built one.
    const pkg = JSON.parse(readFileSync(join(app, "node_modules", "@witness", "sdk", "package.json"), "utf8"));
    assert.equal(pkg.name, "@witness/sdk");
  } finally {
    if (child.exitCode === null) child.kill("SIGKILL");
    alice.close();
    rmSync(dir, { recursive: true, force: true });
    await server.stop();
  }
});
