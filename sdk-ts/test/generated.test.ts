// The checked-in stubs under src/gen/ must be what `npm run generate`
// produces from ../proto today: generate into a temp dir and compare.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");

function files(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else out.set(relative(dir, p), readFileSync(p, "utf8"));
    }
  };
  walk(dir);
  return out;
}

test("checked-in generated code is up to date with ../proto", () => {
  const out = mkdtempSync(join(tmpdir(), "witness-gen-"));
  try {
    execFileSync(join(ROOT, "node_modules", ".bin", "buf"), ["generate", "--output", out], {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
    });
    const fresh = files(join(out, "src", "gen"));
    const checkedIn = files(join(ROOT, "src", "gen"));
    assert.ok(fresh.size > 0, "buf generate produced nothing");
    assert.deepEqual([...checkedIn.keys()].sort(), [...fresh.keys()].sort(), "same files");
    for (const [name, text] of fresh) {
      assert.ok(checkedIn.get(name) === text, `src/gen/${name} is stale: run \`npm run generate\``);
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
