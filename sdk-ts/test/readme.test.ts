// The TypeScript example in the top-level README (the ```ts block right after
// `<!-- example:ts -->`) runs as written against the real server: it blocks
// until alice (role sre) approves it, then prints who approved.
// WITNESS_README points the test at another file (for trying out a block).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { type Decision } from "../dist/index.js";
import { WitnessServer, eventually, within } from "./helpers.js";

/** The SDK package root (sdk-ts/), the parent of this test's directory. */
const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const README = process.env.WITNESS_README ? resolve(process.env.WITNESS_README) : join(ROOT, "..", "README.md");
const MARKER = "<!-- example:ts -->";
const EXAMPLE_URL = "http://127.0.0.1:50051";

/** The body of the ```ts fence that follows the marker line. */
function exampleBlock(markdown: string): string {
  const lines = markdown.split(/\r?\n/);
  const at = lines.findIndex((l) => l.trim() === MARKER);
  assert.ok(at >= 0, `${README} has no \`${MARKER}\` line`);
  let open = at + 1;
  while (open < lines.length && lines[open]!.trim() === "") open++;
  assert.ok(
    open < lines.length && /^```(ts|typescript)\s*$/.test(lines[open]!.trim()),
    `${README}: the line after \`${MARKER}\` must open a \`\`\`ts block, found ${JSON.stringify(lines[open] ?? "<end of file>")}`,
  );
  const close = lines.findIndex((l, i) => i > open && l.trim() === "```");
  assert.ok(close > open, `${README}: the \`\`\`ts block after \`${MARKER}\` is never closed`);
  return lines.slice(open + 1, close).join("\n") + "\n";
}

interface Run {
  exited: Promise<number | null>;
  code: number | null | undefined;
  stdout: string;
  stderr: string;
  kill(): void;
}

/** Runs a TypeScript file with `node --import tsx`, from the package root. */
function runTs(file: string): Run {
  const child = spawn(process.execPath, ["--import", "tsx", file], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const run: Run = {
    code: undefined,
    stdout: "",
    stderr: "",
    exited: new Promise((resolve) =>
      child.once("exit", (code) => {
        run.code = code;
        resolve(code);
      }),
    ),
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    },
  };
  child.stdout.setEncoding("utf8").on("data", (s: string) => (run.stdout += s));
  child.stderr.setEncoding("utf8").on("data", (s: string) => (run.stderr += s));
  return run;
}

test("the README's TypeScript example blocks until approved and prints the approvers", async () => {
  const block = exampleBlock(readFileSync(README, "utf8"));
  assert.ok(block.includes(EXAMPLE_URL), `the README example does not connect to ${EXAMPLE_URL}`);
  assert.ok(block.includes(`from "@witness/sdk"`), `the README example does not import "@witness/sdk"`);

  const server = await WitnessServer.start();
  // Inside the package, so `@witness/sdk` resolves to this package (self-reference via "exports").
  const dir = mkdtempSync(join(ROOT, ".readme-example-"));
  const alice = server.client({ principal: "alice", roles: ["sre"] });
  let run: Run | undefined;
  try {
    const file = join(dir, "example.mts");
    writeFileSync(file, block.replaceAll(EXAMPLE_URL, server.url));
    const r = (run = runTs(file));
    const output = () => `stdout:\n${r.stdout}\nstderr:\n${r.stderr}\nserver:\n${server.stderr()}`;

    const asked = await eventually<Decision>(
      "the example to ask deploy.production",
      async () => {
        if (r.code !== undefined) throw new Error(`the example exited with ${r.code} before being answered\n${output()}`);
        for await (const d of alice.list({ statuses: ["OPEN"], kinds: ["deploy.production"] })) return d;
        return undefined;
      },
      30_000,
    );
    assert.equal(asked.askedBy, "deployer");
    assert.deepEqual(asked.input, { service: "api", version: "1.4.2" });
    assert.deepEqual(asked.authorizedRoles, ["sre"]);

    const res = await alice.answer(asked.id, "approve", "canary is green");
    assert.equal(res.outcome, "CLOSED");

    const code = await within("the example to exit", r.exited, 20_000);
    assert.equal(code, 0, `the example exited with ${code}\n${output()}`);
    assert.match(r.stdout, /approved by alice/, output());
    // While it waited it printed the decision's id (with answerHint: how to answer it).
    assert.ok(r.stdout.includes(asked.id), `the example did not print the decision's id\n${output()}`);
  } finally {
    run?.kill();
    alice.close();
    rmSync(dir, { recursive: true, force: true });
    await server.stop();
  }
});
