"""ask() blocks until another client answers: sync and asyncio."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
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


def hint_records(caplog: pytest.LogCaptureFixture, decision_id: str) -> list:
    return [
        r for r in caplog.records
        if r.name == "witness" and r.levelno == logging.INFO and decision_id in r.getMessage()
    ]


def test_ask_on_created_gets_the_open_decision_once_before_the_wait(server, kind, caplog):
    k = kind("deploy")
    created = []
    called = threading.Event()

    def on_created(d: witness.Decision) -> None:
        created.append(d)
        called.set()

    caplog.set_level(logging.INFO, logger="witness")
    with server.client("deployer") as asker, server.client("alice", ["sre"]) as alice:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pending = pool.submit(
                asker.ask, k, {"service": "api"}, authorized_roles=["sre", "dba"],
                on_created=on_created,
            )
            assert called.wait(30), "on_created was not called"
            assert not pending.done(), "ask() returned before anyone answered"
            [d] = created
            assert d.is_open and d.kind == k and d.asked_by == "deployer"
            # The SDK logged how to answer it, once, at INFO, on one line.
            [record] = wait_until(lambda: hint_records(caplog, d.id), what="the INFO hint")
            assert record.getMessage() == (
                f"witness: waiting for a human to decide {k} (decision {d.id}); answer it with: "
                f'witness answer {d.id} approve --rationale "..." --as NAME --roles sre '
                f"--server {server.addr}"
            )
            alice.answer(d.id, "approve", "canary is green")
            decision = pending.result(timeout=30)
    assert len(created) == 1
    assert decision.id == d.id and decision.approved
    assert len(hint_records(caplog, d.id)) == 1
    assert witness.answer_hint(d) == (
        f"waiting for a human to decide {k} (decision {d.id}); answer it with:\n"
        f'  witness answer {d.id} approve --rationale "..." --as NAME --roles sre'
    )


def test_ask_on_created_error_ends_ask_without_waiting(server, kind):
    k = kind("deploy")
    created = []

    def on_created(d: witness.Decision) -> None:
        created.append(d)
        raise RuntimeError("no terminal to print to")

    with server.client("deployer") as asker:
        with pytest.raises(RuntimeError, match="no terminal"):
            asker.ask(k, {"a": 1}, authorized_roles=["sre"], on_created=on_created)
        [d] = created
        assert asker.get(d.id).is_open  # the decision stays open
        asker.cancel(d.id, "test over")


def test_answer_hint_names_the_server_the_token_and_escapes():
    d = witness.Decision.from_proto(
        witness.pb.Decision(id="0193-abc", kind="deploy.x\n\x1b[31mfake\u202e", authorized_roles=[])
    )
    assert witness.answer_hint(d, server="http://127.0.0.1:50051") == (
        "waiting for a human to decide deploy.x\\n\\x1b[31mfake\\u{202e} (decision 0193-abc); "
        'answer it with:\n  witness answer 0193-abc approve --rationale "..." --as NAME --roles ROLE'
    )
    assert witness.answer_hint(d, server="https://w.example:443", token=True).endswith(
        'witness answer 0193-abc approve --rationale "..." --token TOKEN --server https://w.example:443'
    )


@pytest.mark.asyncio
async def test_async_ask_on_created_is_awaited_once_before_the_wait(server, kind, caplog):
    k = kind("deploy")
    created = []
    caplog.set_level(logging.INFO, logger="witness")
    async with server.aclient("deployer") as asker, server.aclient("alice", ["sre"]) as alice:

        async def on_created(d: witness.Decision) -> None:
            created.append(d)
            assert d.is_open
            # Answered before ask() starts waiting: the wait still sees it close.
            await alice.answer(d.id, "reject", "not during the freeze")

        decision = await asyncio.wait_for(
            asker.ask(k, {"x": 1}, authorized_roles=["sre"], on_created=on_created), 30
        )
    [d] = created
    assert d.status == Status.OPEN and decision.id == d.id
    assert decision.status == Status.REJECTED
    [record] = hint_records(caplog, d.id)
    assert f"witness answer {d.id} approve" in record.getMessage()
