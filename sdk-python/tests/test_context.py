"""Two-person decisions with a context provider, and context changes."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time

import pytest

import witness
from witness import Status

from conftest import wait_until


class World:
    """A context provider whose answer the test can change; counts calls."""

    def __init__(self, state: dict) -> None:
        self.state = state
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(self) -> dict:
        with self.lock:
            self.calls += 1
            return dict(self.state)


def confirmed_after(client: witness.Client, decision_id: str, answer_index: int):
    """Waits until the asker re-confirmed the context after answer N."""

    def check():
        d = client.get(decision_id)
        if len(d.answers) <= answer_index or d.context_confirmed_at is None:
            return None
        return d if d.context_confirmed_at > d.answers[answer_index].answered_at else None

    return wait_until(check, what="the context to be re-confirmed after the approval")


def test_two_person_quorum_completes_with_context_provider(server, kind):
    k = kind("glob")
    world = World({"region": "eu-west-1", "replicas": 3})
    with server.client("deployer") as asker, server.client("alice", ["sre"]) as alice, \
            server.client("bob", ["sre"]) as bob:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pending = pool.submit(
                asker.ask, k, {"action": "scram"}, authorized_roles=["sre"],
                context=world, context_interval=1.0,
            )
            d = wait_until(
                lambda: next(iter(alice.list(kinds=[k], statuses="open")), None),
                what="the decision",
            )
            assert d.required_approvals == 2 and len(d.context_hash) == 64
            first = alice.answer(d.id, "approve", "first pair of eyes")
            assert first.outcome == witness.AnswerOutcome.AWAITING_APPROVALS
            # The SDK re-confirms the context by itself after alice's approval.
            confirmed_after(alice, d.id, 0)
            second = bob.answer(d.id, "approve", "second pair of eyes")
            assert second.outcome == witness.AnswerOutcome.CLOSED
            decision = pending.result(timeout=30)
    assert decision.status == Status.APPROVED
    assert sorted(a.operator for a in decision.answers) == ["alice", "bob"]
    assert world.calls >= 2  # once for the ask, again to confirm


def test_quorum_refused_without_reconfirmation(server, kind):
    """The server rule the SDK automates: no fresh confirmation, no quorum."""
    k = kind("glob")
    with server.client("deployer") as asker, server.client("alice", ["sre"]) as alice, \
            server.client("bob", ["sre"]) as bob:
        d = asker.ask_nowait(k, 1, authorized_roles=["sre"], context={"v": 1})
        alice.answer(d.id, "approve", "one")
        with pytest.raises(witness.FailedPrecondition) as err:
            bob.answer(d.id, "approve", "two")
        assert "re-confirmed" in err.value.message
        # An approval carrying the matching context confirms it itself.
        done = bob.answer(d.id, "approve", "two", current_context={"v": 1})
        assert done.decision.status == Status.APPROVED
        # A second answer by the same operator is refused.
        with pytest.raises(witness.FailedPrecondition):
            alice.answer(d.id, "approve", "again")


def test_context_change_closes_decision(server, kind):
    k = kind("glob")
    world = World({"primary": "db-1"})
    with server.client("deployer") as asker, server.client("alice", ["sre"]) as alice:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pending = pool.submit(
                asker.ask, k, {"action": "failover"}, authorized_roles=["sre"],
                context=world, context_interval=0.2,
            )
            wait_until(lambda: next(iter(alice.list(kinds=[k], statuses="open")), None),
                       what="the decision")
            with world.lock:
                world.state = {"primary": "db-2"}  # the world moved on
            decision = pending.result(timeout=30)
    assert decision.status == Status.CONTEXT_CHANGED
    assert decision.closed_by == "deployer"
    assert decision.answers == ()


def test_report_context_by_hand(server, kind):
    k = kind("glob")
    with server.client("deployer") as asker:
        d = asker.ask_nowait(k, 1, authorized_roles=["sre"], context={"a": [1, 2]})
        same = asker.report_context(d.id, {"a": [1, 2]})
        assert same.matched and same.decision.context_confirmed_at is not None
        changed = asker.report_context(d.id, {"a": [2, 1]})
        assert not changed.matched
        assert changed.decision.status == Status.CONTEXT_CHANGED


@pytest.mark.asyncio
async def test_async_two_person_with_async_provider(server, kind):
    k = kind("glob")
    calls = []

    async def provider() -> dict:
        calls.append(time.monotonic())
        return {"cluster": "prod", "nodes": 12}

    async with server.aclient("deployer") as asker, server.aclient("alice", ["sre"]) as alice, \
            server.aclient("bob", ["sre"]) as bob:

        async def operators() -> None:
            d = None
            while d is None:
                d = await _first_open(alice, k)
            await alice.answer(d.id, "approve", "one")
            deadline = time.monotonic() + 20
            while True:  # wait for the SDK's re-confirmation, then complete
                cur = await bob.get(d.id)
                confirmed = cur.context_confirmed_at
                if confirmed and confirmed > cur.answers[0].answered_at:
                    break
                assert time.monotonic() < deadline, "context never re-confirmed"
                await asyncio.sleep(0.02)
            await bob.answer(d.id, "approve", "two")

        decision, _ = await asyncio.wait_for(
            asyncio.gather(
                asker.ask(k, {"op": "drain"}, authorized_roles=["sre"], context=provider,
                          context_interval=1.0),
                operators(),
            ),
            30,
        )
    assert decision.status == Status.APPROVED
    assert len(calls) >= 2


async def _first_open(client: witness.AsyncClient, kind: str):
    async for d in client.list(statuses=["open"], kinds=[kind]):
        return d
    await asyncio.sleep(0.02)
    return None
