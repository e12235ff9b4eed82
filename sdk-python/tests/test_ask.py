"""ask() blocks until another client answers: sync and asyncio."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
import uuid

import pytest

import witness
from witness import EventType, Status, Verdict

from conftest import wait_until


def open_decision(client: witness.Client, kind: str) -> witness.Decision:
    """Waits until a decision of ``kind`` is open and visible to ``client``."""
    return wait_until(
        lambda: next(iter(client.list(statuses=["open"], kinds=[kind])), None),
        what=f"an open {kind} decision",
    )


def test_ask_answered_by_another_client(server, kind):
    k = kind("deploy")
    with server.client("deployer") as asker, server.client("alice", ["sre"]) as alice:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pending = pool.submit(
                asker.ask,
                k,
                {"service": "api", "version": "1.4.2", "canary": [1, 2.5, None, True]},
                authorized_roles=["sre"],
                surfaces=["console"],
            )
            seen = open_decision(alice, k)
            assert seen.input["canary"] == [1, 2.5, None, True]
            assert seen.asked_by == "deployer"
            assert not pending.done()
            result = alice.answer(seen.id, Verdict.APPROVE, "canary is green", answer={"ok": True})
            assert result.outcome == witness.AnswerOutcome.CLOSED
            decision = pending.result(timeout=30)
    assert decision.id == seen.id
    assert decision.status == Status.APPROVED and decision.approved
    assert decision.closed_at is not None
    [answer] = decision.answers
    assert answer.operator == "alice" and answer.rationale == "canary is green"
    assert answer.answer == {"ok": True}


def test_ask_rejected_returns_normally(server, kind):
    k = kind("deploy")
    with server.client("deployer") as asker, server.client("alice", ["sre"]) as alice:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pending = pool.submit(asker.ask, k, "drop table?", authorized_roles="sre")
            seen = open_decision(alice, k)
            alice.answer(seen.id, "reject", "no")
            decision = pending.result(timeout=30)
    assert decision.status == Status.REJECTED and decision.rejected and not decision.approved


def test_ask_expires_per_policy(server, kind):
    k = kind("expire")
    with server.client("deployer") as asker:
        started = time.monotonic()
        decision = asker.ask(k, {"q": 1}, authorized_roles=["sre"])
    assert decision.status == Status.EXPIRED
    assert not decision.rejected
    assert time.monotonic() - started < 30


def test_ask_is_idempotent_by_request_id(server, kind):
    k = kind("deploy")
    rid = str(uuid.uuid4())
    with server.client("deployer") as asker:
        first = asker.ask_nowait(k, {"a": 1}, authorized_roles=["sre"], request_id=rid)
        again = asker.ask_nowait(k, {"a": 1}, authorized_roles=["sre"], request_id=rid)
        assert again.id == first.id
        with pytest.raises(witness.AlreadyExists):
            asker.ask_nowait(k, {"a": 2}, authorized_roles=["sre"], request_id=rid)
        # Generated request ids: two asks are two decisions.
        other = asker.ask_nowait(k, {"a": 1}, authorized_roles=["sre"])
        assert other.id != first.id


def test_answer_is_idempotent_by_request_id(server, kind):
    k = kind("deploy")
    with server.client("deployer") as asker, server.client("alice", ["sre"]) as alice:
        d = asker.ask_nowait(k, 1, authorized_roles=["sre"], required_approvals=1)
        rid = str(uuid.uuid4())
        first = alice.answer(d.id, "approve", "ok", request_id=rid)
        retry = alice.answer(d.id, "approve", "ok", request_id=rid)
        assert retry.decision.version == first.decision.version
        assert len(retry.decision.answers) == 1


def test_watch_follows_until_closed(server, kind):
    k = kind("deploy")
    with server.client("deployer") as asker, server.client("alice", ["sre"]) as alice:
        d = asker.ask_nowait(k, 1, authorized_roles=["sre"], surfaces=["console"])
        events = asker.watch(d.id)
        first = next(events)
        assert first.snapshot and first.type == EventType.CREATED
        assert alice.ack(d.id, "console").accepted
        delivered = next(events)
        assert delivered.type == EventType.DELIVERED
        assert delivered.decision.delivered_via == "console"
        alice.cancel(d.id, "not needed")
        rest = list(events)  # ends after the terminal event
    assert [e.type for e in rest] == [EventType.CANCELLED]
    assert rest[-1].decision.status == Status.CANCELLED
    assert rest[-1].decision.close_reason == "not needed"


@pytest.mark.asyncio
async def test_async_ask_answered_by_another_client(server, kind):
    k = kind("deploy")
    async with server.aclient("deployer") as asker, server.aclient("alice", ["sre"]) as alice:

        async def operator() -> str:
            events = alice.stream(include_open=True, kinds=[k])
            try:
                async for ev in events:
                    if ev.decision is not None and ev.decision.is_open:
                        await alice.answer(ev.decision.id, "approve", "looks right")
                        return ev.decision.id
            finally:
                await events.aclose()
            raise AssertionError("stream ended")

        decision, answered_id = await asyncio.wait_for(
            asyncio.gather(asker.ask(k, {"x": 1}, authorized_roles=["sre"]), operator()), 30
        )
        assert decision.id == answered_id
        assert decision.status == Status.APPROVED
        assert [a.operator for a in decision.answers] == ["alice"]
        got = await alice.get(decision.id)
        assert got.status == Status.APPROVED
        listed = [d.id async for d in alice.list(kinds=[k], page_size=1)]
        assert listed == [decision.id]
