"""The README's Install block runs as written: a fresh venv outside the
repository installs the SDK from its directory and runs the quickstart
against a real server; the install leaves nothing untracked in the clone."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
from conftest import wait_until

SDK = Path(__file__).resolve().parents[1]
README = SDK / "README.md"


def block(name: str, lang: str) -> str:
    m = re.search(rf"<!-- {name} -->\n```{lang}\n(.*?)```", README.read_text(), re.S)
    assert m, f"README has no {name} block"
    return m.group(1)


def untracked() -> str:
    out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all", "--", "."],
                         cwd=SDK, capture_output=True, text=True, check=True).stdout
    return "\n".join(line for line in out.splitlines() if line.startswith("??"))


@pytest.mark.timeout(600)
def test_install_block_as_written(fresh_server, tmp_path):
    srv = fresh_server()
    before = untracked()
    (tmp_path / "app.py").write_text(example_app(srv.addr))
    script = block("install:sh", "sh").replace("../witness/sdk-python", shlex.quote(str(SDK)))
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    proc = subprocess.Popen(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        with srv.client("alice", ["sre"]) as alice:
            def asked():
                if proc.poll() is not None:
                    raise AssertionError(f"the install block exited {proc.returncode}: {proc.stdout.read()}")
                return next(iter(alice.list(statuses="open", kinds="deploy.production")), None)

            d = wait_until(asked, what="the installed quickstart's question", timeout=540)
            alice.answer(d.id, "approve", "canary is green")
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    assert "deploying; approved by ['alice']" in out
    # The package came from the venv, not from this checkout's source tree.
    site = subprocess.run([str(tmp_path / ".venv/bin/python"), "-c",
                           "import witness; print(witness.__file__)"],
                          capture_output=True, text=True, check=True).stdout
    assert ".venv" in site and str(SDK / "src") not in site, site
    assert untracked() == before, f"pip left files in the clone:\n{untracked()}"


def example_app(addr: str) -> str:
    m = re.search(r"<!-- example:quickstart -->\n```python\n(.*?)```", README.read_text(), re.S)
    assert m
    return m.group(1).replace("127.0.0.1:50051", addr)
