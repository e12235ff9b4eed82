"""gRPC status codes become typed exceptions carrying the server's message."""

from __future__ import annotations

import asyncio

import pytest

import witness
from witness import Status

from conftest import sha256_hex

MISSING = "01900000-0000-7000-8000-000000000000"


def test_not_found(server):
    with server.client("alice", ["sre"]) as c:
        with pytest.raises(witness.NotFound) as err:
            c.get(MISSING)
    assert MISSING in err.value.message
    assert isinstance(err.value, witness.WitnessError)
    assert err.value.code.name == "NOT_FOUND"


def test_not_visible_is_not_found(server, kind):
    with server.client("deployer") as asker, server.client("dan", ["dba"]) as dan:
        d = asker.ask_nowait(kind("deploy"), 1, authorized_roles=["sre"])
        with pytest.raises(witness.NotFound):
            dan.get(d.id)


def test_invalid_argument_names_the_field(server, kind):
    with server.client("deployer") as asker, server.client("alice", ["sre"]) as alice:
        with pytest.raises(witness.InvalidArgument) as err:
            asker.ask_nowait(kind("deploy"), 1, authorized_roles=[])
        assert err.value.field == "authorized_roles"
        assert err.value.message.startswith("authorized_roles")

        d = asker.ask_nowait(kind("deploy"), 1, authorized_roles=["sre"])
        with pytest.raises(witness.InvalidArgument) as err:
            alice.answer(d.id, "approve", "")
        assert err.value.field == "rationale"

        schema = {"type": "object", "required": ["minutes"],
                  "properties": {"minutes": {"type": "integer"}}}
        d = asker.ask_nowait(kind("deploy"), 1, authorized_roles=["sre"], response_schema=schema)
        with pytest.raises(witness.InvalidArgument) as err:
            alice.answer(d.id, "approve", "ok", answer={"minutes": "ten"})
        assert err.value.field == "answer"
        ok = alice.answer(d.id, "approve", "ok", answer={"minutes": 10})
        assert ok.decision.answers[0].answer == {"minutes": 10}


def test_permission_denied_and_dev_mode_anonymous(server, kind):
    with server.client("deployer") as asker, server.client("dan", ["dba"]) as dan, \
            server.client() as anonymous:
        d = asker.ask_nowait(kind("deploy"), 1, authorized_roles=["sre"])
        # dan (dba) cannot see an sre decision: told it does not exist.
        with pytest.raises(witness.NotFound) as err:
            dan.answer(d.id, "approve", "not my call")
        assert err.value.message == f"decision_id: decision {d.id} not found"
        with pytest.raises(witness.PermissionDenied) as err:  # no self-approval
            asker.answer(d.id, "approve", "me, myself")
        assert "deployer" not in err.value.message and "sre" not in err.value.message
        # Anonymous may ask (dev mode) but not answer.
        anon = anonymous.ask_nowait(kind("deploy"), 1, authorized_roles=["sre"])
        assert anon.asked_by == "anonymous"
        with pytest.raises((witness.Unauthenticated, witness.PermissionDenied)):
            anonymous.answer(d.id, "approve", "who am I")


def test_failed_precondition_on_closed_decision(server, kind):
    with server.client("deployer") as asker, server.client("alice", ["sre"]) as alice:
        d = asker.ask_nowait(kind("deploy"), 1, authorized_roles=["sre"])
        assert asker.cancel(d.id, "changed my mind").status == Status.CANCELLED
        with pytest.raises(witness.FailedPrecondition):
            alice.answer(d.id, "approve", "too late")
        assert alice.ack(d.id, "console").accepted is False


def test_token_mode(fresh_server, kind):
    config = f"""
[[principals]]
name = "deployer"
token_sha256 = "{sha256_hex('deploy-token')}"
roles = []

[[principals]]
name = "alice"
token_sha256 = "{sha256_hex('alice-token')}"
roles = ["sre"]
"""
    srv = fresh_server(config)
    with witness.Client(srv.addr) as nobody, \
            witness.Client(srv.addr, token="wrong") as wrong, \
            witness.Client(srv.addr, token="deploy-token") as deployer, \
            witness.Client(f"http://{srv.addr}", token="alice-token") as alice, \
            witness.Client(srv.addr, principal="alice", roles=["sre"]) as spoof:
        with pytest.raises(witness.Unauthenticated):
            nobody.ask_nowait(kind("deploy"), 1, authorized_roles=["sre"])
        with pytest.raises(witness.Unauthenticated):
            wrong.get(MISSING)
        d = deployer.ask_nowait(kind("deploy"), 1, authorized_roles=["sre"])
        assert d.asked_by == "deployer"
        # Dev-mode headers are no identity once principals are configured.
        with pytest.raises(witness.Unauthenticated):
            spoof.answer(d.id, "approve", "I am alice, honest")
        result = alice.answer(d.id, "approve", "ok")
        assert result.decision.status == Status.APPROVED
        assert result.decision.answers[0].operator == "alice"


def test_async_errors(server):
    async def run():
        async with server.aclient("alice", ["sre"]) as c:
            with pytest.raises(witness.NotFound):
                await c.get(MISSING)
            with pytest.raises(witness.InvalidArgument) as err:
                await c.ask_nowait("", 1, authorized_roles=["sre"])
            assert err.value.field == "kind"
            with pytest.raises(witness.NotFound):
                async for _ in c.watch(MISSING):
                    pass

    asyncio.run(asyncio.wait_for(run(), 30))


def test_unavailable_after_retries():
    # Nothing listens on port 1: calls retry for retry_timeout, then raise.
    with witness.Client("127.0.0.1:1", retry_timeout=0.3, call_timeout=2) as c:
        with pytest.raises(witness.Unavailable):
            c.get(MISSING)


def test_resource_exhausted_parses_resume_point():
    err = witness.ResourceExhausted(
        "stream consumer too slow: it fell 4096 events behind; reconnect with after_sequence = 812"
    )
    assert err.after_sequence == 812
