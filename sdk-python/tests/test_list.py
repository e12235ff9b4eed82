"""list() iterates over every page."""

from __future__ import annotations

from witness import Status


class CountingStub:
    """Wraps the generated stub to count ListDecisions calls."""

    def __init__(self, stub) -> None:
        self._stub = stub
        self.list_calls = []

    def __getattr__(self, name):
        return getattr(self._stub, name)

    def ListDecisions(self, request, **kw):  # noqa: N802 - gRPC method name
        self.list_calls.append((request.page_size, request.page_token))
        return self._stub.ListDecisions(request, **kw)


def test_list_iterates_all_pages(server, kind):
    k = kind("page")
    with server.client("deployer") as asker, server.client("alice", ["sre"]) as alice:
        ids = [asker.ask_nowait(k, {"n": i}, authorized_roles=["sre"]).id for i in range(7)]
        alice.answer(ids[2], "approve", "done")
        counting = CountingStub(alice._stub)
        alice._stub = counting

        listed = list(alice.list(kinds=[k], page_size=3))
        assert [d.id for d in listed] == ids  # oldest first, nothing lost or repeated
        assert [d.input for d in listed] == [{"n": i} for i in range(7)]
        assert len(counting.list_calls) >= 3
        assert counting.list_calls[0] == (3, "")
        assert all(token for _, token in counting.list_calls[1:])

        open_ids = [d.id for d in alice.list(statuses=[Status.OPEN], kinds=[k], page_size=2)]
        assert open_ids == [i for i in ids if i != ids[2]]
        approved = [d.id for d in alice.list(statuses="approved", kinds=k)]
        assert approved == [ids[2]]
        # One big page gives the same.
        assert [d.id for d in alice.list(kinds=[k], page_size=1000)] == ids


def test_list_respects_visibility(server, kind):
    k = kind("page")
    with server.client("deployer") as asker, server.client("dan", ["dba"]) as dan:
        asker.ask_nowait(k, 1, authorized_roles=["sre"])
        assert list(dan.list(kinds=[k])) == []
        assert len(list(asker.list(kinds=[k]))) == 1
