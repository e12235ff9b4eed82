// Runs the official MCP conformance suite (@modelcontextprotocol/conformance,
// pinned) against the real witness binary: every server scenario of the
// active suite, with expected-failures.yml naming the ones that need the
// suite's own tools, prompts or resources. witness runs in dev mode, since
// the suite's client sends no credentials (token mode answers it 401, which
// the Rust and SDK tests check).
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";
import { start } from "./witness.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const server = await start({ dev: true });
let status = 1;
try {
  const r = spawnSync(
    process.execPath,
    [
      join(here, "node_modules/@modelcontextprotocol/conformance/dist/index.js"),
      "server",
      "--url",
      server.url,
      "--expected-failures",
      join(here, "expected-failures.yml"),
    ],
    { stdio: ["ignore", "pipe", "inherit"], encoding: "utf8", timeout: 300_000 },
  );
  // The per-scenario chatter is long; the summary and the baseline check are what matter.
  const out = r.stdout ?? "";
  const summary = out.indexOf("=== SUMMARY ===");
  // Its "Total: N passed, M failed" counts the baseline's expected failures
  // too; a log reader would take it for the run's verdict, so it is left out.
  const shown = (summary >= 0 ? out.slice(summary) : out).replace(/^Total: .*\n/m, "");
  process.stdout.write(shown);
  status = r.status ?? 1;
} finally {
  await server.stop();
}
process.exit(status);
