"""The README's examples run as written against a real server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from conftest import wait_until

README = Path(__file__).resolve().parents[1] / "README.md"


def example(name: str) -> str:
    m = re.search(rf"<!-- example:{name} -->\n```python\n(.*?)```", README.read_text(), re.S)
    assert m, f"README has no example:{name}"
    return m.group(1)


def run(code: str, addr: str) -> subprocess.Popen:
    env = dict(os.environ, WITNESS_ADDR=addr)
    return subprocess.Popen([sys.executable, "-c", code], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_quickstart(fresh_server):
    srv = fresh_server()
    proc = run(example("quickstart").replace("127.0.0.1:50051", srv.addr), srv.addr)
    try:
        with srv.client("alice", ["sre"]) as alice:
            d = wait_until(
                lambda: next(iter(alice.list(statuses="open", kinds="deploy.production")), None),
                what="the quickstart's question",
            )
            alice.answer(d.id, "approve", "canary is green")
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "deploying; approved by ['alice']" in out
    # While it waited it printed the decision's id and how to answer it.
    assert (
        "waiting for a human to decide deploy.production (decision " + d.id + "); answer it with:\n"
        "  witness answer " + d.id + ' approve --rationale "..." --as NAME --roles sre\n'
    ) in out


def test_two_person_example(fresh_server):
    srv = fresh_server()
    proc = run(example("two-person"), srv.addr)
    try:
        out, err = proc.communicate(timeout=90)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "APPROVED ['alice', 'bob']" in out
