#!/usr/bin/env bash
# Runs the Python SDK's tests against the real witness server binary
# ($WITNESS_BIN, default ../target/debug/witness: run `cargo build` first).
#
# Creates sdk-python/.venv with `python3 -m venv` when missing, installs the
# pinned requirements-dev.txt and the SDK itself (editable), type-checks
# it with mypy --strict, then runs pytest -q. Extra arguments go to pytest: ./run-tests.sh -k stream
set -euo pipefail
cd "$(dirname "$0")"

if [[ ! -x .venv/bin/python ]]; then
  python3 -m venv .venv
fi
py=.venv/bin/python

# Reinstall only when the pins or the package metadata changed.
stamp=.venv/.witness-installed
want="$(cat requirements-dev.txt pyproject.toml | "$py" -c 'import hashlib,sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  "$py" -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
  # The pinned setuptools from requirements-dev.txt builds the package.
  "$py" -m pip install --quiet --disable-pip-version-check --no-build-isolation --no-deps -e .
  echo "$want" > "$stamp"
fi

# Strict type check of the SDK (pyproject.toml [tool.mypy]); mypy 2 needs
# Python 3.10 or later, so an older interpreter skips it and says so.
if "$py" -c 'import mypy' 2>/dev/null; then
  "$py" -m mypy
else
  echo "run-tests.sh: mypy not installed (Python < 3.10): type check skipped" >&2
fi

exec "$py" -m pytest -q "$@"
