// Builds dist/ whenever npm prepares this package: `npm install` / `npm ci`
// here, `npm pack`, and `npm install <path to sdk-ts>` from another project
// (npm then runs this in sdk-ts/ itself, where the compiler may not be
// installed yet: it is installed first, from the pinned package-lock.json).
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const npm = process.platform === "win32" ? "npm.cmd" : "npm";
const run = (args) => execFileSync(npm, args, { cwd: root, stdio: "inherit" });

if (!existsSync(join(root, "node_modules", "typescript", "bin", "tsc"))) {
  // --ignore-scripts: this script is the prepare step; do not recurse.
  run(["ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"]);
}
run(["run", "--silent", "build"]);
