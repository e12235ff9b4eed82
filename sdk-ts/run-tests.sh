#!/usr/bin/env bash
# Installs the SDK's pinned dependencies from package-lock.json, builds it,
# checks the tests' types, and runs the tests against the real server binary
# (WITNESS_BIN, default ../target/debug/witness: run `cargo build` first).
set -euo pipefail
cd "$(dirname "$0")"

export WITNESS_BIN="${WITNESS_BIN:-$(cd .. && pwd)/target/debug/witness}"
if [ ! -x "$WITNESS_BIN" ]; then
  echo "run-tests.sh: witness server binary not found at $WITNESS_BIN" >&2
  echo "run-tests.sh: build it with 'cargo build' in the repository root, or set WITNESS_BIN" >&2
  exit 1
fi

npm ci --no-audit --no-fund --loglevel=error
npm run --silent build
npm run --silent typecheck
npm test
