#!/usr/bin/env bash
# Runs the web console's tests in headless Chromium against the real witness
# server binary ($WITNESS_BIN, default ../../target/debug/witness).
#
# Needs /usr/bin/chromium and /usr/bin/chromedriver (Debian packages
# chromium, chromium-driver: `make browser` installs them). Creates
# tests/browser/.venv with the pinned requirements.txt and the Python SDK.
# Extra arguments go to pytest: ./run-tests.sh -k token
set -euo pipefail
cd "$(dirname "$0")"

for b in chromium chromedriver; do
  command -v "$b" >/dev/null || { echo "missing $b: run \`make browser\` (apt-get install chromium chromium-driver)" >&2; exit 2; }
done
if [[ ! -x .venv/bin/python ]]; then
  python3 -m venv .venv
fi
py=.venv/bin/python
stamp=.venv/.witness-installed
want="$(cat requirements.txt ../../sdk-python/pyproject.toml | sha256sum | cut -d' ' -f1)"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  "$py" -m pip install --quiet --disable-pip-version-check -r requirements.txt
  "$py" -m pip install --quiet --disable-pip-version-check --no-build-isolation --no-deps -e ../../sdk-python
  echo "$want" > "$stamp"
fi
# Selenium must use Debian's chromium and chromedriver and fetch nothing.
export SE_OFFLINE=true SE_AVOID_STATS=true
exec "$py" -m pytest -q "$@"
