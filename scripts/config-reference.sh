#!/usr/bin/env bash
# Rewrites the generated section of docs/src/configuration.md (between the
# config-reference markers) with `witness config reference`.
# Usage: scripts/config-reference.sh [WITNESS_BIN]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/debug/witness}
page=docs/src/configuration.md
python3 - "$bin" "$page" <<'PY'
import subprocess, sys
binary, page = sys.argv[1], sys.argv[2]
ref = subprocess.run([binary, "config", "reference"], check=True, capture_output=True, text=True).stdout
text = open(page).read()
begin, end = "<!-- config-reference:begin -->\n", "<!-- config-reference:end -->"
i, j = text.index(begin) + len(begin), text.index(end)
open(page, "w").write(text[:i] + ref + text[j:])
print(f"{page}: configuration reference rewritten")
PY
