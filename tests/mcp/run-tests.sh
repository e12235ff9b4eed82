#!/usr/bin/env bash
# witness's /mcp against clients nobody here wrote, on the real server binary
# (WITNESS_BIN, default ../../target/debug/witness: run `cargo build` first):
# the official TypeScript SDK and conformance suite (pinned in
# package-lock.json, run on the Node 22 that the lock also pins, as the suite
# needs it) and the official Python SDK (pinned in requirements.txt).
set -euo pipefail
cd "$(dirname "$0")"

export WITNESS_BIN="${WITNESS_BIN:-$(cd ../.. && pwd)/target/debug/witness}"
if [ ! -x "$WITNESS_BIN" ]; then
  echo "run-tests.sh: witness server binary not found at $WITNESS_BIN (cargo build, or set WITNESS_BIN)" >&2
  exit 1
fi

if [ ! -f node_modules/.installed ] || [ package-lock.json -nt node_modules/.installed ]; then
  npm ci --no-audit --no-fund --loglevel=error
  touch node_modules/.installed
fi
if [ ! -f .venv/.installed ] || [ requirements.txt -nt .venv/.installed ]; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
  touch .venv/.installed
fi
NODE=node_modules/.bin/node

echo "== the official TypeScript SDK"
"$NODE" --test sdk.test.mjs
echo "== the official Python SDK"
.venv/bin/python -m pytest -q test_python_sdk.py
echo "== the official conformance suite"
"$NODE" conformance.mjs
