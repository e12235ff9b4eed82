"""A function as ``token``: called for every call and stream start, so a
short-lived token is always current."""

from __future__ import annotations

import asyncio
import time
from typing import List

import pytest

import witness

from conftest import free_port, sha256_hex


def two_principals() -> str:
    return f"""
[[principals]]
name = "agent-a"
token_sha256 = "{sha256_hex('token-a')}"
roles = []

[[principals]]
name = "agent-b"
token_sha256 = "{sha256_hex('token-b')}"
roles = []
"""


def test_token_provider_is_called_per_call_and_stream(fresh_server, kind):
    srv = fresh_server(two_principals())
    calls: List[int] = []

    def provider() -> str:
        calls.append(1)
        return "token-a" if len(calls) == 1 else "token-b"

    with witness.Client(srv.addr, token=provider) as c:
        assert calls == []  # not called before the first call
        first = c.ask_nowait(kind("deploy"), 1, authorized_roles=["sre"])
        second = c.ask_nowait(kind("deploy"), 2, authorized_roles=["sre"])
        assert (first.asked_by, second.asked_by) == ("agent-a", "agent-b")
        assert len(calls) == 2
        assert c.get(second.id).asked_by == "agent-b"
        assert len(calls) == 3
        events = c.watch(second.id)
        assert next(events).decision.id == second.id
        events.close()
        assert len(calls) == 4


def test_async_token_provider_may_be_async(fresh_server, kind):
    srv = fresh_server(two_principals())
    calls: List[int] = []

    async def provider() -> str:
        calls.append(1)
        await asyncio.sleep(0)
        return "token-a" if len(calls) == 1 else "token-b"

    async def run() -> None:
        async with witness.AsyncClient(srv.addr, token=provider) as c:
            first = await c.ask_nowait(kind("deploy"), 1, authorized_roles=["sre"])
            second = await c.ask_nowait(kind("deploy"), 2, authorized_roles=["sre"])
            assert (first.asked_by, second.asked_by) == ("agent-a", "agent-b")
            async for ev in c.watch(second.id):
                assert ev.decision.id == second.id
                break
            assert len(calls) == 3
        # A plain function works for the async client too.
        async with witness.AsyncClient(srv.addr, token=lambda: "token-a") as c:
            d = await c.ask_nowait(kind("deploy"), 3, authorized_roles=["sre"])
            assert d.asked_by == "agent-a"

    asyncio.run(asyncio.wait_for(run(), 30))


def broken() -> str:
    raise RuntimeError("token file unreadable")


def test_failing_token_provider_fails_the_call_and_sends_nothing(fresh_server, kind):
    srv = fresh_server(two_principals())
    with witness.Client(srv.addr, token=broken) as c:
        with pytest.raises(witness.TokenProviderError, match="token file unreadable") as err:
            c.ask_nowait(kind("deploy"), 1, authorized_roles=["sre"])
        assert isinstance(err.value, witness.Unauthenticated)
        assert isinstance(err.value.__cause__, RuntimeError)
        with pytest.raises(witness.TokenProviderError):
            next(iter(c.watch("0193-missing")))
    with witness.Client(srv.addr, token=lambda: "") as c:
        with pytest.raises(witness.TokenProviderError, match="non-empty str"):
            c.get("0193-missing")
    with witness.Client(srv.addr, token="token-a") as a:
        assert list(a.list()) == []  # nothing was asked
    # Nothing listens here: a call that went out would retry UNAVAILABLE for
    # retry_timeout; the provider's failure is raised at once instead.
    with witness.Client(f"127.0.0.1:{free_port()}", token=broken, retry_timeout=30) as c:
        started = time.monotonic()
        with pytest.raises(witness.TokenProviderError):
            c.get("0193-missing")
        assert time.monotonic() - started < 5


def test_failing_async_token_provider(fresh_server, kind):
    srv = fresh_server(two_principals())

    async def broken_async() -> str:
        raise RuntimeError("token endpoint down")

    async def run() -> None:
        for provider in (broken, broken_async):
            async with witness.AsyncClient(srv.addr, token=provider) as c:
                with pytest.raises(witness.TokenProviderError, match="token"):
                    await c.ask_nowait(kind("deploy"), 1, authorized_roles=["sre"])

    asyncio.run(asyncio.wait_for(run(), 30))
