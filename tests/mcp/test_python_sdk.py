"""witness's /mcp through the official Python SDK (`mcp`, pinned in
requirements.txt), with two operators answering a two-person rule through the
real `witness` CLI."""

import hashlib
import json
import os
import re
import subprocess
import tempfile
import sys
import time
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

BIN = os.environ.get("WITNESS_BIN", str(Path(__file__).resolve().parents[2] / "target/debug/witness"))
TOKENS = {"agent": "py-agent-token-0123", "alice": "py-alice-token-0123", "bob": "py-bob-token-0123"}
CONTEXT = {"schema_version": 41, "replicas_in_sync": True}


def sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@pytest.fixture(scope="module")
def server():
    with tempfile.TemporaryDirectory() as d:
        principals = "".join(
            f'[[principals]]\nname = "{n}"\ntoken_sha256 = "{sha(t)}"\nroles = {json.dumps(r)}\n'
            for n, t, r in [
                ("agent", TOKENS["agent"], []),
                ("alice", TOKENS["alice"], ["dba"]),
                ("bob", TOKENS["bob"], ["dba"]),
            ]
        )
        config = Path(d) / "witness.toml"
        config.write_text(
            f'listen = "127.0.0.1:0"\n[store]\nurl = "sqlite://{d}/witness.db"\n'
            f'[receipts]\nkey_file = "{d}/receipt.key"\n{principals}'
            '[[policies]]\nkind = "db.*"\nrequired_approvals = 2\ncontext_max_age = "10m"\n'
        )
        proc = subprocess.Popen(
            [BIN, "serve", "--config", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "WITNESS_LOG": "warn"},
        )
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            m = re.search(r"witness listening on 127\.0\.0\.1:(\d+)", line)
            assert m, f"witness did not start: {line!r}"
            yield int(m.group(1))
        finally:
            proc.terminate()
            proc.wait(timeout=30)


@pytest.fixture
def anyio_backend():
    return "asyncio"


def cli(port: int, who: str, *args: str) -> str:
    out = subprocess.run(
        [BIN, *args, "--server", f"127.0.0.1:{port}"],
        env={**os.environ, "WITNESS_TOKEN": TOKENS[who]},
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout


def client(port: int, who: str = "agent") -> Client:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKENS[who]}"}, timeout=httpx2.Timeout(30, read=300))
    return Client(streamable_http_client(f"http://127.0.0.1:{port}/mcp", http_client=http))


async def until(what: str, check, seconds: float = 20):
    deadline = time.monotonic() + seconds
    while True:
        v = check()
        if v:
            return v
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await anyio.sleep(0.05)


def decision_id(messages: list[str]) -> str | None:
    for m in messages:
        found = re.search(r"decision ([0-9a-f-]{36})", m)
        if found:
            return found.group(1)
    return None


@pytest.mark.anyio
async def test_two_person_rule_answered_by_two_cli_operators(server):
    messages: list[str] = []

    async def progress(value: float, total: float | None, message: str | None) -> None:
        messages.append(message or "")

    async with client(server) as c:
        async with anyio.create_task_group() as tg:
            result = {}

            async def ask():
                result["r"] = await c.call_tool(
                    "request_approval",
                    {
                        "kind": "db.migrate",
                        "input": {"migration": "0042_add_index", "database": "orders"},
                        "authorized_roles": ["dba"],
                        "context": CONTEXT,
                    },
                    progress_callback=progress,
                    read_timeout_seconds=60,
                )

            tg.start_soon(ask)
            did = await until("the decision id in a progress notification", lambda: decision_id(messages))
            cli(server, "alice", "approve", did, "--rationale", "index is online-safe")
            await until("alice's vote", lambda: any(m.startswith("vote: alice approved (1 of 2") for m in messages))
            assert "r" not in result, "one approval of two does not close it"
            cli(server, "bob", "approve", did, "--rationale", "replicas are in sync", "--context", json.dumps(CONTEXT))
        r = result["r"]
        assert not r.is_error, r
        s = r.structured_content
        assert s["status"] == "APPROVED"
        assert [(a["operator"], a["rationale"]) for a in s["answers"]] == [
            ("alice", "index is online-safe"),
            ("bob", "replicas are in sync"),
        ]
        assert s["required_approvals"] == 2
        assert s["receipt"]["key_id"]
        assert r.content[0].text == "APPROVED by alice: index is online-safe; bob: replicas are in sync"


async def agent_that_crashes(port: int) -> None:
    """Run as a separate process (see below): asks, prints the decision id
    from the first progress notification, then waits until it is killed."""

    async def progress(value: float, total: float | None, message: str | None) -> None:
        did = decision_id([message or ""])
        if did:
            print(did, flush=True)

    async with client(port) as c:
        await c.call_tool(
            "request_approval",
            {
                "kind": "db.vacuum",
                "input": {"table": "events"},
                "authorized_roles": ["dba"],
                "context": CONTEXT,
                "request_id": "py-vacuum-1",
            },
            progress_callback=progress,
            read_timeout_seconds=600,
        )


@pytest.mark.anyio
async def test_after_a_reconnect_wait_for_decision_returns_the_outcome(server):
    # The first agent asks and dies (SIGKILL: no cancel, no goodbye) while
    # the decision is open; a dropped connection leaves it open.
    agent = subprocess.Popen(
        [sys.executable, __file__, "crash-agent", str(server)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert agent.stdout is not None
        did = agent.stdout.readline().strip()
        assert re.fullmatch(r"[0-9a-f-]{36}", did), did
    finally:
        agent.kill()
        agent.wait()
    # People answer while the agent is away.
    cli(server, "alice", "approve", did, "--rationale", "off-peak")
    cli(server, "bob", "approve", did, "--rationale", "disk has room", "--context", json.dumps(CONTEXT))
    # A new connection picks the outcome up.
    async with client(server) as c:
        r = await c.call_tool("wait_for_decision", {"decision_id": did}, read_timeout_seconds=60)
        assert r.structured_content["status"] == "APPROVED", r
        assert r.content[0].text == "APPROVED by alice: off-peak; bob: disk has room"
        # Retrying the ask with its request_id is the same, decided, decision.
        again = await c.call_tool(
            "request_approval",
            {
                "kind": "db.vacuum",
                "input": {"table": "events"},
                "authorized_roles": ["dba"],
                "context": CONTEXT,
                "request_id": "py-vacuum-1",
            },
            read_timeout_seconds=60,
        )
        assert again.structured_content["decision_id"] == did
        assert again.structured_content["status"] == "APPROVED"


if __name__ == "__main__" and sys.argv[1:2] == ["crash-agent"]:
    anyio.run(agent_that_crashes, int(sys.argv[2]))
