"""The checked-in generated stubs must match the proto (run ./generate.sh)."""

from __future__ import annotations

import filecmp
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
CHECKED_IN = HERE / "src" / "witness" / "_proto"


def test_generated_stubs_are_current(tmp_path):
    env = dict(os.environ, PYTHON=sys.executable)
    subprocess.run(["bash", str(HERE / "generate.sh"), str(tmp_path)], check=True, env=env,
                   capture_output=True, timeout=120)
    stale = []
    for fresh in sorted(tmp_path.rglob("*")):
        if fresh.is_file():
            rel = fresh.relative_to(tmp_path)
            old = CHECKED_IN / rel
            if not old.is_file() or not filecmp.cmp(fresh, old, shallow=False):
                stale.append(str(rel))
    assert not stale, f"stale generated stubs {stale}: run sdk-python/generate.sh"


def test_pinned_grpcio_tools_is_installed():
    from importlib.metadata import version

    pins = dict(
        line.split("==", 1)
        for line in (HERE / "requirements-dev.txt").read_text().splitlines()
        if line.startswith("grpcio-tools==")
    )
    assert version("grpcio-tools") == pins["grpcio-tools"].strip()
