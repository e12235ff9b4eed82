"""wait_any(ids): the first of several decisions to close, over one stream
that resumes across a server restart (SIGKILL); sync and asyncio."""

from __future__ import annotations

import asyncio
import concurrent.futures
import subprocess
import threading

import pytest

import witness
from witness import EventType, Status

from conftest import POLICIES, free_port, witness_bin


def spy_snapshots(client, counter: list, seen: threading.Event) -> None:
    """Wraps ``client.stream`` to count SNAPSHOT_END markers, so the test
    knows the waiter is subscribed (and, later, that it resumed instead of
    re-subscribing)."""
    original = client.stream

    def stream(*args, **kwargs):
        for ev in original(*args, **kwargs):
            if ev.type == EventType.SNAPSHOT_END:
                counter.append(1)
                seen.set()
            yield ev

    client.stream = stream


def test_wait_any_returns_the_first_to_close_across_a_restart(fresh_server, kind):
    k = kind("any")
    srv = fresh_server(POLICIES, port=free_port())
    with srv.client("deployer") as asker, srv.client("alice", ["sre"]) as alice, \
            srv.client("deployer") as waiter:
        ids = [asker.ask_nowait(k, {"n": i}, authorized_roles=["sre"]).id for i in range(3)]
        other = asker.ask_nowait(k, {"n": 9}, authorized_roles=["sre"]).id
        snapshots: list = []
        subscribed = threading.Event()
        spy_snapshots(waiter, snapshots, subscribed)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pending = pool.submit(waiter.wait_any, ids)
            assert subscribed.wait(20), "the waiter subscribed"
            alice.answer(other, "approve", "not one of them")
            srv.kill9()
            srv.start()  # same port, same database
            # The operator answers from another process (the CLI): what is
            # under test is the waiter's reconnect, and sync grpc channels in
            # one process share a subchannel that can sit in connect
            # back-off after the kill (tests/test_stream.py shows the same).
            answered = subprocess.run(
                [str(witness_bin()), "answer", ids[2], "reject", "--rationale",
                 "after the restart", "--as", "alice", "--roles", "sre",
                 "--server", srv.addr],
                capture_output=True, text=True, timeout=60,
            )
            assert answered.returncode == 0, answered.stderr
            first = pending.result(timeout=60)
        assert first.id == ids[2]
        assert first.status == Status.REJECTED
        assert len(snapshots) == 1, "resumed after the last event, no new snapshot"
        # One already closed counts.
        assert waiter.wait_any(ids).id == ids[2]
        with pytest.raises(witness.InvalidArgument) as e:
            waiter.wait_any([])
        assert e.value.field == "ids"


@pytest.mark.asyncio
async def test_async_wait_any_across_a_restart(fresh_server, kind):
    k = kind("aany")
    srv = fresh_server(POLICIES, port=free_port())
    with srv.client("deployer") as asker, srv.client("alice", ["sre"]) as alice:
        ids = [asker.ask_nowait(k, {"n": i}, authorized_roles=["sre"]).id for i in range(2)]
        async with srv.aclient("deployer") as waiter:
            subscribed = asyncio.Event()
            original = waiter.stream

            async def stream(*args, **kwargs):
                async for ev in original(*args, **kwargs):
                    if ev.type == EventType.SNAPSHOT_END:
                        subscribed.set()
                    yield ev

            waiter.stream = stream
            task = asyncio.ensure_future(waiter.wait_any(ids))
            await asyncio.wait_for(subscribed.wait(), 20)
            srv.kill9()
            srv.start()
            await asyncio.get_running_loop().run_in_executor(
                None, lambda: alice.cancel(ids[0], "not needed")
            )
            first = await asyncio.wait_for(task, 60)
            assert first.id == ids[0]
            assert first.status == Status.CANCELLED
