"""The synchronous client, :class:`Client`."""

from __future__ import annotations

import logging
import queue
import threading
import time
from datetime import timedelta
from typing import (
    Any, Callable, Generator, Iterable, Iterator, Optional, Sequence, Tuple, TypeVar, Union,
)

import grpc

from . import _common as common
from ._errors import NotFound, Unavailable, from_rpc_error, rpc_code
from ._json import to_value
from ._proto.witness.v1 import witness_pb2 as pb
from ._proto.witness.v1 import witness_pb2_grpc as pb_grpc
from ._types import (
    AckResult,
    AnswerOutcome,
    AnswerResult,
    ContextReport,
    Decision,
    DecisionEvent,
    EventType,
    Status,
    Verdict,
)

log = logging.getLogger("witness")

T = TypeVar("T")

# Errors of a background context report that must not end the wait: the
# decision closed meanwhile (the watch delivers it), or the server is away.
_REPORT_TRANSIENT = {
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
}


def _why(err: BaseException) -> str:
    code = rpc_code(err)
    return code.name if code is not None else str(err)


class _Stop:
    """Lets another thread end a blocking stream read: cancels the current call."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._call: Any = None
        self.event = threading.Event()

    def attach(self, call: Any) -> None:
        with self._lock:
            self._call = call
            if self.event.is_set():
                call.cancel()

    def stop(self) -> None:
        with self._lock:
            self.event.set()
            if self._call is not None:
                self._call.cancel()


class Client:
    """A synchronous witness client over one gRPC channel.

    Thread-safe: share one client between threads. Use it as a context
    manager, or call :meth:`close` when done.

    Args:
        target: ``HOST:PORT``, ``http://HOST:PORT`` or ``https://HOST:PORT``
            (``https`` implies ``tls=True``).
        token: bearer token, sent as ``authorization: Bearer TOKEN``; or a
            function returning the current token, called for every unary
            call and every stream (re)start (for short-lived tokens). If it
            raises, the call raises :class:`~witness.TokenProviderError`
            and sends nothing.
        principal: dev mode only: the caller's name (``x-witness-principal``).
        roles: dev mode only: the caller's roles (``x-witness-roles``), a list
            or a comma-separated string.
        tls: use TLS with the system's root certificates.
        root_certificates: PEM root certificates for TLS (implies ``tls``).
        call_timeout: deadline of each unary call in seconds (``None``: none).
        retry_timeout: how long unary calls keep retrying UNAVAILABLE.
        reconnect_timeout: how long ``ask``/``wait``/``watch``/``stream`` keep
            reconnecting through one outage before raising
            :class:`~witness.Unavailable` (``None``: forever).
        max_backoff: longest pause between two retries, in seconds.
        options: extra gRPC channel options, merged over the SDK's.
    """

    def __init__(
        self,
        target: str,
        *,
        token: Union[None, str, Callable[[], str]] = None,
        principal: Optional[str] = None,
        roles: Union[None, str, Sequence[str]] = None,
        tls: bool = False,
        root_certificates: Optional[bytes] = None,
        call_timeout: Optional[float] = 30.0,
        retry_timeout: float = 30.0,
        reconnect_timeout: Optional[float] = None,
        max_backoff: float = 2.0,
        options: Optional[Sequence[Tuple[str, Any]]] = None,
    ) -> None:
        self._s = common.Settings(
            target,
            token=token,
            principal=principal,
            roles=roles,
            tls=tls,
            root_certificates=root_certificates,
            call_timeout=call_timeout,
            retry_timeout=retry_timeout,
            reconnect_timeout=reconnect_timeout,
            max_backoff=max_backoff,
            options=options,
        )
        creds = self._s.credentials()
        if creds is None:
            self._channel = grpc.insecure_channel(self._s.target, options=self._s.options)
        else:
            self._channel = grpc.secure_channel(self._s.target, creds, options=self._s.options)
        self._stub: Any = pb_grpc.WitnessServiceStub(self._channel)  # type: ignore[no-untyped-call]

    # -- lifecycle ---------------------------------------------------------

    def close(self) -> None:
        """Closes the channel; in-flight streams end."""
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- plumbing ----------------------------------------------------------

    def _unary(self, method: Callable[..., T], request: Any, *, retry: bool = True) -> T:
        """Calls a unary RPC, retrying UNAVAILABLE with back-off for up to
        ``retry_timeout`` seconds, and maps failures to typed errors."""
        deadline = time.monotonic() + self._s.retry_timeout
        backoff = common.Backoff(self._s.max_backoff)
        while True:
            try:
                return method(request, metadata=self._s.metadata(), timeout=self._s.call_timeout)
            except grpc.RpcError as e:
                delay = backoff.next()
                code = rpc_code(e)
                if retry and code == grpc.StatusCode.UNAVAILABLE:
                    if time.monotonic() + delay < deadline:
                        log.debug("witness: %s unavailable, retrying in %.2fs",
                                  type(request).__name__, delay)
                        time.sleep(delay)
                        continue
                raise from_rpc_error(e) from e

    def _outage_wait(self, since: Optional[float], backoff: common.Backoff,
                     err: BaseException, stop: Optional[threading.Event] = None) -> float:
        """Sleeps before a stream reconnect; raises once the outage exceeds
        ``reconnect_timeout``. Returns the outage's start time."""
        now = time.monotonic()
        since = now if since is None else since
        limit = self._s.reconnect_timeout
        if limit is not None and now - since > limit:
            raise from_rpc_error(err) if isinstance(err, grpc.RpcError) else Unavailable(str(err))
        delay = backoff.next()
        log.info("witness: stream interrupted (%s), reconnecting in %.2fs", _why(err), delay)
        if stop is not None:
            stop.wait(delay)
        else:
            time.sleep(delay)
        return since

    # -- asking ------------------------------------------------------------

    def ask_nowait(
        self,
        kind: str,
        input: Any,
        *,
        authorized_roles: Union[str, Iterable[str]],
        surfaces: Union[str, Iterable[str]] = (),
        response_schema: Any = None,
        required_approvals: int = 0,
        context: common.ContextProvider = None,
        timeout: Union[None, float, timedelta] = None,
        request_id: Optional[str] = None,
    ) -> Decision:
        """Asks a question and returns the open decision without waiting.

        ``context`` is the context snapshot (any JSON), or a function that
        returns it (called once here). ``timeout`` (seconds or ``timedelta``)
        shortens the policy's time to live. ``request_id`` defaults to a new
        UUID; UNAVAILABLE is retried with the same one, so a retry never
        creates a second decision. See :meth:`ask` for the other arguments.
        """
        snapshot = context() if common.is_provider(context) else context
        req = common.ask_request(
            kind,
            input,
            authorized_roles=authorized_roles,
            surfaces=surfaces,
            response_schema=response_schema,
            required_approvals=required_approvals,
            context_snapshot=snapshot,
            has_context=context is not None,
            timeout=timeout,
            request_id=request_id,
        )
        resp = self._unary(self._stub.Ask, req)
        return Decision.from_proto(resp.decision)

    def ask(
        self,
        kind: str,
        input: Any,
        *,
        authorized_roles: Union[str, Iterable[str]],
        surfaces: Union[str, Iterable[str]] = (),
        response_schema: Any = None,
        required_approvals: int = 0,
        context: common.ContextProvider = None,
        timeout: Union[None, float, timedelta] = None,
        request_id: Optional[str] = None,
        context_interval: float = 5.0,
        on_created: Optional[Callable[[Decision], Any]] = None,
    ) -> Decision:
        """Asks a question and blocks until a human decides; returns the closed decision.

        Check ``decision.approved`` (or ``decision.status``) before acting:
        the call returns normally for every outcome (APPROVED, REJECTED,
        CANCELLED, EXPIRED, CONTEXT_CHANGED) and raises only when the call
        itself fails.

        Args:
            kind: dotted name that selects the server's policy.
            input: what the human must judge (any JSON value).
            authorized_roles: roles whose holders may answer (non-empty).
            surfaces: where to deliver the decision, e.g. ``["console"]``.
            response_schema: JSON Schema answers must satisfy.
            required_approvals: distinct approvals needed (0: the policy's).
            context: the world the decision is about. Pass a function
                returning the current snapshot and the SDK keeps witness
                informed: it reports a fresh snapshot after every change of
                the decision and every ``context_interval`` seconds, so a
                two-person quorum completes, and a changed world closes the
                decision ``CONTEXT_CHANGED``. A plain value is only sent with
                the question (approvers must then confirm it themselves with
                ``current_context``).
            timeout: time to live (seconds or ``timedelta``); the policy's
                when ``None``.
            request_id: idempotency key (default: a new UUID).
            context_interval: seconds between periodic context reports.
            on_created: called once, on the calling thread, with the
                decision as ``Ask`` returned it (open, unless an idempotent
                retry found it closed already), before the wait: e.g.
                ``on_created=lambda d: print(witness.answer_hint(d))``. If it
                raises, ``ask`` raises that error and does not wait (the
                decision stays open).

        While it waits, ``ask`` also logs at INFO on the ``witness`` logger
        how to answer the decision (:func:`witness.answer_hint`, on one
        line), so an application with logging configured shows it.
        """
        decision = self.ask_nowait(
            kind,
            input,
            authorized_roles=authorized_roles,
            surfaces=surfaces,
            response_schema=response_schema,
            required_approvals=required_approvals,
            context=context,
            timeout=timeout,
            request_id=request_id,
        )
        if on_created is not None:
            on_created(decision)
        if decision.is_closed:
            return decision  # an idempotent retry of an already decided question
        common.log_waiting(log, self._s, decision)
        provider = context if common.is_provider(context) else None
        return self.wait(decision.id, context=provider, context_interval=context_interval)

    def wait(
        self,
        decision_id: str,
        *,
        context: Optional[Callable[[], Any]] = None,
        context_interval: float = 5.0,
    ) -> Decision:
        """Blocks until the decision closes and returns it.

        Follows the decision with ``WatchDecision``, re-watching when the
        stream drops. With a ``context`` function (the asker only), reports
        the current snapshot after each change and every
        ``context_interval`` seconds (at most a third of the policy's
        ``context_max_age``). The function runs on the calling thread; if it
        raises, the error is logged and the report skipped (no
        confirmation is the safe side: the quorum cannot complete on a
        stale context).
        """
        events: "queue.Queue[Tuple[str, Any]]" = queue.Queue()
        stop = _Stop()

        def pump() -> None:
            try:
                for ev in self._watch(decision_id, stop):
                    events.put(("event", ev))
                events.put(("end", None))
            except BaseException as e:  # handed to the waiting thread
                events.put(("error", e))

        thread = threading.Thread(target=pump, name=f"witness-watch-{decision_id}", daemon=True)
        thread.start()
        interval = context_interval
        next_report: Optional[float] = None
        last: Optional[Decision] = None
        try:
            while True:
                wait_for = None
                if context is not None and next_report is not None:
                    wait_for = max(0.0, next_report - time.monotonic())
                try:
                    what, item = events.get(timeout=wait_for)
                except queue.Empty:
                    assert context is not None
                    closed = self._report(decision_id, context)
                    if closed is not None:
                        return closed
                    next_report = time.monotonic() + interval
                    continue
                if what == "error":
                    raise item
                if what == "end":
                    if last is not None and last.is_closed:
                        return last
                    return self.get(decision_id)
                ev: DecisionEvent = item
                last = ev.decision
                if last is None:
                    continue
                if last.is_closed:
                    return last
                if context is not None:
                    interval = common.context_interval(context_interval, last)
                    if common.wants_report(ev):
                        closed = self._report(decision_id, context)
                        if closed is not None:
                            return closed
                    next_report = time.monotonic() + interval
        finally:
            stop.stop()
            thread.join(timeout=5)

    def _report(self, decision_id: str, context: Callable[[], Any]) -> Optional[Decision]:
        """One background context report; returns the decision if it closed."""
        try:
            snapshot = context()
        except Exception:
            log.warning("witness: context provider failed; context not confirmed", exc_info=True)
            return None
        req = pb.ReportContextRequest(decision_id=decision_id, context_snapshot=to_value(snapshot))
        try:
            resp = self._stub.ReportContext(
                req, metadata=self._s.metadata(), timeout=self._s.call_timeout
            )
        except grpc.RpcError as e:
            if rpc_code(e) in _REPORT_TRANSIENT:
                log.debug("witness: context report skipped: %s", e)
                return None
            raise from_rpc_error(e) from e
        decision = Decision.from_proto(resp.decision)
        return decision if decision.is_closed else None

    # -- answering and the other unary calls -------------------------------

    def answer(
        self,
        decision_id: str,
        verdict: Union[Verdict, str],
        rationale: str,
        *,
        answer: Any = None,
        current_context: Any = None,
        on_behalf_of: str = "",
        request_id: Optional[str] = None,
    ) -> AnswerResult:
        """Answers a decision: ``verdict`` is ``Verdict.APPROVE``/``REJECT``
        or ``"approve"``/``"reject"``; ``rationale`` must not be empty.

        ``answer`` is the payload checked against the response schema;
        ``current_context`` (the context as the operator sees it) confirms
        the context when it matches and closes the decision
        ``CONTEXT_CHANGED`` when it does not. Retries on UNAVAILABLE reuse
        the ``request_id`` (default: a new UUID), so they return the first
        result instead of answering twice.
        """
        req = common.answer_request(
            decision_id,
            verdict,
            rationale,
            answer=answer,
            current_context=current_context,
            on_behalf_of=on_behalf_of,
            request_id=request_id,
        )
        resp = self._unary(self._stub.Answer, req)
        return AnswerResult(Decision.from_proto(resp.decision), AnswerOutcome(resp.outcome))

    def ack(self, decision_id: str, surface: str) -> AckResult:
        """Tells witness a human has seen the decision on ``surface``."""
        req = pb.AckDeliveryRequest(decision_id=decision_id, surface=surface)
        resp = self._unary(self._stub.AckDelivery, req)
        return AckResult(resp.accepted, Decision.from_proto(resp.decision))

    def cancel(self, decision_id: str, reason: str = "") -> Decision:
        """Withdraws an open decision (not retried: a cancel is not idempotent)."""
        req = pb.CancelRequest(decision_id=decision_id, reason=reason)
        resp = self._unary(self._stub.Cancel, req, retry=False)
        return Decision.from_proto(resp.decision)

    def report_context(self, decision_id: str, snapshot: Any) -> ContextReport:
        """Reports the asker's current context: an equal snapshot confirms
        it, a different one closes the decision ``CONTEXT_CHANGED``."""
        req = pb.ReportContextRequest(decision_id=decision_id, context_snapshot=to_value(snapshot))
        resp = self._unary(self._stub.ReportContext, req)
        return ContextReport(Decision.from_proto(resp.decision), resp.matched)

    def get(self, decision_id: str) -> Decision:
        """Reads one decision (with its signed ``receipt`` once closed, if enabled)."""
        resp = self._unary(self._stub.GetDecision, pb.GetDecisionRequest(decision_id=decision_id))
        receipt = resp.receipt if resp.HasField("receipt") else None
        return Decision.from_proto(resp.decision, receipt)

    def list(
        self,
        statuses: Union[None, Status, str, Iterable[Union[Status, str]]] = None,
        kinds: Union[str, Iterable[str]] = (),
        page_size: int = 0,
    ) -> Iterator[Decision]:
        """Iterates over every decision the caller may see, oldest first,
        fetching page after page (``page_size`` per call; 0: the server's
        default). Filters: ``statuses`` (e.g. ``[Status.OPEN]`` or
        ``"open"``) and ``kinds`` (globs)."""
        req = common.list_request(statuses, kinds, page_size)
        while True:
            resp = self._unary(self._stub.ListDecisions, req)
            for d in resp.decisions:
                yield Decision.from_proto(d)
            if not resp.next_page_token:
                return
            req.page_token = resp.next_page_token

    # -- streams -----------------------------------------------------------

    def watch(self, decision_id: str) -> Iterator[DecisionEvent]:
        """Follows one decision: its current state first (``snapshot=True``),
        then each change; ends after the event that closes it.

        If the stream drops, it re-watches and yields the state it finds
        there only if the decision changed meanwhile (intermediate events of
        the outage are summed up in that one snapshot event).
        """
        return self._watch(decision_id, None)

    def _watch(self, decision_id: str, stop: Optional[_Stop]) -> Iterator[DecisionEvent]:
        state = common.WatchState()
        backoff = common.Backoff(self._s.max_backoff)
        since: Optional[float] = None
        req = pb.WatchDecisionRequest(decision_id=decision_id)
        while not state.done:
            if stop is not None and stop.event.is_set():
                return
            call = self._stub.WatchDecision(req, metadata=self._s.metadata())
            if stop is not None:
                stop.attach(call)
            try:
                for resp in call:
                    backoff.reset()
                    since = None
                    ev = state.accept(resp.event)
                    if ev is not None:
                        yield ev
                if not state.done:  # ended without the terminal event: re-watch
                    since = self._outage_wait(since, backoff, Unavailable("watch ended"),
                                              stop.event if stop else None)
            except grpc.RpcError as e:
                if stop is not None and stop.event.is_set():
                    return
                if rpc_code(e) not in common.RESUMABLE:
                    raise from_rpc_error(e) from e
                since = self._outage_wait(since, backoff, e, stop.event if stop else None)
            finally:
                call.cancel()

    def wait_any(self, ids: Iterable[str]) -> Decision:
        """Blocks until the first of the decisions ``ids`` closes and returns
        it (one already closed counts).

        Follows all of them over ONE ``StreamDecisions`` stream (filtered
        here, client-side); the stream resumes after the last event when it
        drops, so a decision closing during an outage is not missed.
        """
        state = common.WaitAnyState(ids)
        events = self.stream(include_open=True)
        try:
            for ev in events:
                if ev.type == EventType.SNAPSHOT_END:
                    for decision_id in state.missing():
                        try:
                            d = self.get(decision_id)
                        except NotFound:
                            continue
                        if d.is_closed:
                            return d
                    continue
                closed = state.closed(ev)
                if closed is not None:
                    return closed
        finally:
            events.close()
        raise Unavailable("the decision stream ended")  # stream() never ends

    def stream(
        self,
        include_open: bool = False,
        kinds: Union[str, Iterable[str]] = (),
        surfaces: Union[str, Iterable[str]] = (),
        after_sequence: Optional[int] = None,
    ) -> Generator[DecisionEvent, None, None]:
        """Iterates over decision events, for consoles and surfaces; never ends by itself.

        ``include_open`` first yields the open decisions (``snapshot=True``)
        and an ``EventType.SNAPSHOT_END`` marker; then live events follow.
        ``kinds`` (globs) and ``surfaces`` filter; ``after_sequence=N``
        resumes after event N (e.g. the last ``event.sequence`` you
        processed before a restart of your own; 0 replays the log from the
        first event; beyond the server's log head raises a
        WitnessError with code OUT_OF_RANGE).

        The iterator reconnects by itself when the stream drops (server
        restart, UNAVAILABLE, RESOURCE_EXHAUSTED for a slow consumer) and
        resumes after the last event it yielded: no event is lost or
        yielded twice. Break out of the loop (or ``close()`` the iterator)
        to end it.
        """
        state = common.StreamState(include_open, kinds, surfaces, after_sequence)
        backoff = common.Backoff(self._s.max_backoff)
        since: Optional[float] = None
        while True:
            call = self._stub.StreamDecisions(state.request(), metadata=self._s.metadata())
            try:
                for resp in call:
                    backoff.reset()
                    since = None
                    ev = state.accept(resp.event)
                    if ev is not None:
                        yield ev
                since = self._outage_wait(since, backoff, Unavailable("stream ended"))
            except grpc.RpcError as e:
                if rpc_code(e) not in common.RESUMABLE:
                    raise from_rpc_error(e) from e
                since = self._outage_wait(since, backoff, e)
            finally:
                call.cancel()

