"""Streams: snapshot, resume across a server restart (SIGKILL), slow consumers."""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from typing import List

import pytest

import witness
from witness import DecisionEvent, EventType, Status

from conftest import POLICIES, free_port, wait_until


class Collector:
    """Consumes ``client.stream(...)`` on a thread, collecting the events."""

    def __init__(self, client: witness.Client, **stream_args) -> None:
        self.events: List[DecisionEvent] = []
        self.errors: List[BaseException] = []
        self._lock = threading.Lock()
        self._iter = client.stream(**stream_args)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for ev in self._iter:
                with self._lock:
                    self.events.append(ev)
        except BaseException as e:  # the client is closed at the end of a test
            self.errors.append(e)

    def live(self) -> List[DecisionEvent]:
        with self._lock:
            return [e for e in self.events if not e.snapshot]

    def wait_live(self, n: int, timeout: float = 30.0) -> List[DecisionEvent]:
        def enough():
            assert not self._fatal(), f"stream failed: {self.errors}"
            got = self.live()
            return got if len(got) >= n else None

        return wait_until(enough, timeout, f"{n} live events")

    def wait_snapshot_end(self) -> DecisionEvent:
        def ended():
            with self._lock:
                return next((e for e in self.events if e.type == EventType.SNAPSHOT_END), None)

        return wait_until(ended, what="SNAPSHOT_END")

    def _fatal(self) -> bool:
        return bool(self.errors)


def assert_contiguous(events: List[DecisionEvent]) -> None:
    seqs = [e.sequence for e in events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), f"gap or repeat in {seqs}"


def test_stream_snapshot_then_live(server, kind):
    k = kind("stream")
    with server.client("deployer") as asker, server.client("alice", ["sre"]) as alice:
        before = asker.ask_nowait(k, "before", authorized_roles=["sre"])
        events = alice.stream(include_open=True, kinds=[k])
        snap = next(events)
        assert snap.snapshot and snap.decision.id == before.id
        assert snap.sequence == before.last_sequence
        end = next(events)
        assert end.type == EventType.SNAPSHOT_END and end.decision is None
        assert end.sequence >= before.last_sequence
        after = asker.ask_nowait(k, "after", authorized_roles=["sre"])
        live = next(events)
        assert not live.snapshot and live.type == EventType.CREATED
        assert live.decision.id == after.id and live.sequence > end.sequence
        events.close()


def test_stream_survives_server_restart(fresh_server, kind):
    k = kind("restart")
    srv = fresh_server(POLICIES, port=free_port())
    port = srv.port
    asker = srv.client("deployer")
    alice = srv.client("alice", ["sre"])
    watcher = srv.client("console", ["sre"])
    try:
        c = Collector(watcher, include_open=True, kinds=[k])
        c.wait_snapshot_end()
        first = [asker.ask_nowait(k, {"n": i}, authorized_roles=["sre"]) for i in range(3)]
        alice.answer(first[0].id, "approve", "before the crash")
        before = c.wait_live(5)  # 3 CREATED, ANSWERED, APPROVED

        srv.kill9()
        srv.start()  # same port, same database
        assert srv.port == port

        # Written before the stream reconnects: must come from the log.
        second = [asker.ask_nowait(k, {"m": i}, authorized_roles=["sre"]) for i in range(3)]
        alice.answer(second[0].id, "reject", "after the crash")
        alice.answer(first[1].id, "approve", "after the crash too")
        events = c.wait_live(5 + 3 + 2 + 2)
        assert not c.errors
        assert events[:5] == before
        assert_contiguous(events)
        assert len({e.sequence for e in events}) == len(events)
        created = [e.decision.id for e in events if e.type == EventType.CREATED]
        assert created == [d.id for d in first + second]
        assert [e.type for e in events[-4:]] == [
            EventType.ANSWERED, EventType.REJECTED, EventType.ANSWERED, EventType.APPROVED
        ]
        # Nothing more arrives (no replayed duplicates): one more event is the next one.
        last = asker.ask_nowait(k, "last", authorized_roles=["sre"])
        tail = c.wait_live(13)
        assert len(tail) == 13 and tail[-1].decision.id == last.id
        assert_contiguous(tail)
    finally:
        for client in (asker, alice, watcher):
            client.close()


def test_ask_survives_server_restart(fresh_server, kind):
    k = kind("restart")
    srv = fresh_server(POLICIES, port=free_port())
    with srv.client("deployer") as asker, srv.client("alice", ["sre"]) as alice:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pending = pool.submit(asker.ask, k, {"x": 1}, authorized_roles=["sre"],
                                  context=lambda: {"stable": True}, context_interval=30)
            # The asker reports its context on the watch's first event: once
            # the confirmation shows, its watch is established.
            d = wait_until(
                lambda: next((d for d in alice.list(kinds=[k]) if d.context_confirmed_at), None),
                what="the asker's watch",
            )
            srv.kill9()
            srv.start()
            alice.answer(d.id, "approve", "after restart")
            decision = pending.result(timeout=60)
    assert decision.status == Status.APPROVED


def test_slow_consumer_resumes_after_resource_exhausted(fresh_server, kind, caplog):
    caplog.set_level(logging.INFO, logger="witness")
    k = kind("slow")
    srv = fresh_server("[streams]\nring = 4\n")
    # No window growth: the unread stream fills the HTTP/2 window (~64 KiB)
    # after a dozen 4 KiB events, then the server's 4-event ring overflows.
    tiny = [("grpc.http2.bdp_probe", 0)]
    n = 200
    with srv.client("deployer") as asker, srv.client("alice", ["sre"], options=tiny) as alice:
        events = alice.stream(include_open=True, kinds=[k])
        assert next(events).type == EventType.SNAPSHOT_END
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda i: asker.ask_nowait(k, {"i": i, "pad": "x" * 4000},
                                                     authorized_roles=["sre"]), range(n)))
        got = [next(events) for _ in range(n)]
        events.close()
    assert_contiguous(got)
    assert all(e.type == EventType.CREATED for e in got)
    # The server did end the stream for lagging, and the SDK resumed it.
    assert any("RESOURCE_EXHAUSTED" in r.getMessage() for r in caplog.records)


@pytest.mark.asyncio
async def test_async_stream_survives_server_restart(fresh_server, kind):
    import asyncio

    k = kind("restart")
    srv = fresh_server(POLICIES, port=free_port())
    got: List[DecisionEvent] = []

    async def until(n: int) -> None:
        async for ev in events:
            got.append(ev)
            if len([e for e in got if not e.snapshot]) >= n:
                return

    async with srv.aclient("deployer") as asker, srv.aclient("console", ["sre"]) as console:
        events = console.stream(include_open=True, kinds=[k])
        # Ask only once the subscription is in place (its SNAPSHOT_END).
        end = await asyncio.wait_for(events.__anext__(), 30)
        assert end.type == EventType.SNAPSHOT_END
        first = asyncio.ensure_future(until(2))
        d1 = await asker.ask_nowait(k, 1, authorized_roles=["sre"])
        d2 = await asker.ask_nowait(k, 2, authorized_roles=["sre"])
        await asyncio.wait_for(first, 30)
        await asyncio.get_running_loop().run_in_executor(None, srv.kill9)
        await asyncio.get_running_loop().run_in_executor(None, srv.start)
        d3 = await asker.ask_nowait(k, 3, authorized_roles=["sre"])
        await asker.cancel(d1.id, "after restart")
        await asyncio.wait_for(until(4), 30)
        await events.aclose()
    assert [e.decision.id for e in got] == [d1.id, d2.id, d3.id, d1.id]
    assert [e.type for e in got] == [EventType.CREATED] * 3 + [EventType.CANCELLED]
    assert_contiguous(got)


def test_stream_after_sequence_zero_replays_the_log_and_beyond_the_head_fails(fresh_server, kind):
    import grpc

    k = kind("resume")
    srv = fresh_server()
    with srv.client("deployer") as asker, srv.client("alice", ["sre"]) as alice:
        made = [asker.ask_nowait(k, {"n": i}, authorized_roles=["sre"]) for i in range(2)]
        # Set to 0: every event from the first one, no snapshot.
        events = alice.stream(after_sequence=0)
        got = [next(events), next(events)]
        events.close()
        assert [e.sequence for e in got] == [1, 2]
        assert [e.decision.id for e in got] == [d.id for d in made]
        assert not any(e.snapshot for e in got)
        # A position this log never reached: OUT_OF_RANGE naming the head.
        head = made[-1].last_sequence
        for after in (head + 1, 2**63, 2**64 - 1):
            with pytest.raises(witness.WitnessError) as err:
                next(alice.stream(after_sequence=after))
            assert err.value.code == grpc.StatusCode.OUT_OF_RANGE, err.value
            assert f"log head {head}" in err.value.message
        with pytest.raises(ValueError):
            next(alice.stream(after_sequence=-1))
