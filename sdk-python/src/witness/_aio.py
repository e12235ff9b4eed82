"""The asyncio client, :class:`AsyncClient` (on ``grpc.aio``)."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from datetime import timedelta
from typing import (
    Any,
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Optional,
    Sequence,
    Tuple,
    TypeVar,
    Union,
)

import grpc
import grpc.aio

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

_REPORT_TRANSIENT = {
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
}

#: A context function for :class:`AsyncClient`: plain or ``async``.
AsyncContextProvider = Callable[[], Union[Any, Awaitable[Any]]]


async def _call_provider(provider: AsyncContextProvider) -> Any:
    value = provider()
    if inspect.isawaitable(value):
        value = await value
    return value


class AsyncClient:
    """The asyncio twin of :class:`witness.Client`: the same methods, as
    coroutines (``ask``, ``answer``, ...) and async iterators (``list``,
    ``watch``, ``stream``). Create it inside a running event loop; use
    ``async with`` or ``await client.close()``.

    Context functions given to ``ask``/``wait`` and the ``token`` provider
    may be plain or ``async``.
    See :class:`witness.Client` for the constructor's arguments.
    """

    def __init__(
        self,
        target: str,
        *,
        token: Union[None, str, Callable[[], Union[str, Awaitable[str]]]] = None,
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
            self._channel = grpc.aio.insecure_channel(self._s.target, options=self._s.options)
        else:
            self._channel = grpc.aio.secure_channel(self._s.target, creds, options=self._s.options)
        self._stub: Any = pb_grpc.WitnessServiceStub(self._channel)  # type: ignore[no-untyped-call]

    async def close(self) -> None:
        """Closes the channel; in-flight streams end."""
        await self._channel.close(None)

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    # -- plumbing ----------------------------------------------------------

    async def _unary(self, method: Callable[..., Any], request: Any, *, retry: bool = True) -> Any:
        """Awaits a unary RPC, retrying UNAVAILABLE with back-off for up to
        ``retry_timeout`` seconds, and maps failures to typed errors."""
        deadline = time.monotonic() + self._s.retry_timeout
        backoff = common.Backoff(self._s.max_backoff)
        while True:
            try:
                return await method(
                    request, metadata=await self._s.metadata_async(), timeout=self._s.call_timeout
                )
            except grpc.RpcError as e:
                delay = backoff.next()
                if retry and rpc_code(e) == grpc.StatusCode.UNAVAILABLE:
                    if time.monotonic() + delay < deadline:
                        await asyncio.sleep(delay)
                        continue
                raise from_rpc_error(e) from e

    async def _outage_wait(
        self, since: Optional[float], backoff: common.Backoff, err: BaseException
    ) -> float:
        now = time.monotonic()
        since = now if since is None else since
        limit = self._s.reconnect_timeout
        if limit is not None and now - since > limit:
            raise from_rpc_error(err) if isinstance(err, grpc.RpcError) else Unavailable(str(err))
        delay = backoff.next()
        code = rpc_code(err)
        why = code.name if code is not None else str(err)
        log.info("witness: stream interrupted (%s), reconnecting in %.2fs", why, delay)
        await asyncio.sleep(delay)
        return since

    # -- asking ------------------------------------------------------------

    async def ask_nowait(
        self,
        kind: str,
        input: Any,
        *,
        authorized_roles: Union[str, Iterable[str]],
        surfaces: Union[str, Iterable[str]] = (),
        response_schema: Any = None,
        required_approvals: int = 0,
        context: Any = None,
        timeout: Union[None, float, timedelta] = None,
        request_id: Optional[str] = None,
    ) -> Decision:
        """Asks a question and returns the open decision; see :meth:`Client.ask_nowait`."""
        snapshot = await _call_provider(context) if common.is_provider(context) else context
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
        resp = await self._unary(self._stub.Ask, req)
        return Decision.from_proto(resp.decision)

    async def ask(
        self,
        kind: str,
        input: Any,
        *,
        authorized_roles: Union[str, Iterable[str]],
        surfaces: Union[str, Iterable[str]] = (),
        response_schema: Any = None,
        required_approvals: int = 0,
        context: Any = None,
        timeout: Union[None, float, timedelta] = None,
        request_id: Optional[str] = None,
        context_interval: float = 5.0,
        on_created: Optional[Callable[[Decision], Any]] = None,
    ) -> Decision:
        """Asks a question and waits until a human decides; returns the
        closed decision. See :meth:`Client.ask` for every argument;
        ``on_created`` may also be an ``async`` function (it is awaited)."""
        decision = await self.ask_nowait(
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
            created = on_created(decision)
            if inspect.isawaitable(created):
                await created
        if decision.is_closed:
            return decision
        common.log_waiting(log, self._s, decision)
        provider = context if common.is_provider(context) else None
        return await self.wait(decision.id, context=provider, context_interval=context_interval)

    async def wait(
        self,
        decision_id: str,
        *,
        context: Optional[AsyncContextProvider] = None,
        context_interval: float = 5.0,
    ) -> Decision:
        """Waits until the decision closes and returns it, reporting the
        context as :meth:`Client.wait` does."""
        events: "asyncio.Queue[Tuple[str, Any]]" = asyncio.Queue()

        async def pump() -> None:
            try:
                async for ev in self.watch(decision_id):
                    await events.put(("event", ev))
                await events.put(("end", None))
            except asyncio.CancelledError:
                raise
            except BaseException as e:
                await events.put(("error", e))

        task = asyncio.ensure_future(pump())
        interval = context_interval
        next_report: Optional[float] = None
        last: Optional[Decision] = None
        try:
            while True:
                wait_for = None
                if context is not None and next_report is not None:
                    wait_for = max(0.0, next_report - time.monotonic())
                try:
                    what, item = await asyncio.wait_for(events.get(), wait_for)
                except asyncio.TimeoutError:
                    assert context is not None
                    closed = await self._report(decision_id, context)
                    if closed is not None:
                        return closed
                    next_report = time.monotonic() + interval
                    continue
                if what == "error":
                    raise item
                if what == "end":
                    if last is not None and last.is_closed:
                        return last
                    return await self.get(decision_id)
                ev: DecisionEvent = item
                last = ev.decision
                if last is None:
                    continue
                if last.is_closed:
                    return last
                if context is not None:
                    interval = common.context_interval(context_interval, last)
                    if common.wants_report(ev):
                        closed = await self._report(decision_id, context)
                        if closed is not None:
                            return closed
                    next_report = time.monotonic() + interval
        finally:
            task.cancel()
            try:
                await task
            except BaseException:
                pass

    async def _report(self, decision_id: str, context: AsyncContextProvider) -> Optional[Decision]:
        try:
            snapshot = await _call_provider(context)
        except Exception:
            log.warning("witness: context provider failed; context not confirmed", exc_info=True)
            return None
        req = pb.ReportContextRequest(decision_id=decision_id, context_snapshot=to_value(snapshot))
        try:
            resp = await self._stub.ReportContext(
                req, metadata=await self._s.metadata_async(), timeout=self._s.call_timeout
            )
        except grpc.RpcError as e:
            if rpc_code(e) in _REPORT_TRANSIENT:
                log.debug("witness: context report skipped: %s", e)
                return None
            raise from_rpc_error(e) from e
        decision = Decision.from_proto(resp.decision)
        return decision if decision.is_closed else None

    # -- answering and the other unary calls -------------------------------

    async def answer(
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
        """Answers a decision; see :meth:`Client.answer`."""
        req = common.answer_request(
            decision_id,
            verdict,
            rationale,
            answer=answer,
            current_context=current_context,
            on_behalf_of=on_behalf_of,
            request_id=request_id,
        )
        resp = await self._unary(self._stub.Answer, req)
        return AnswerResult(Decision.from_proto(resp.decision), AnswerOutcome(resp.outcome))

    async def ack(self, decision_id: str, surface: str) -> AckResult:
        """Tells witness a human has seen the decision on ``surface``."""
        req = pb.AckDeliveryRequest(decision_id=decision_id, surface=surface)
        resp = await self._unary(self._stub.AckDelivery, req)
        return AckResult(resp.accepted, Decision.from_proto(resp.decision))

    async def cancel(self, decision_id: str, reason: str = "") -> Decision:
        """Withdraws an open decision (not retried)."""
        req = pb.CancelRequest(decision_id=decision_id, reason=reason)
        resp = await self._unary(self._stub.Cancel, req, retry=False)
        return Decision.from_proto(resp.decision)

    async def report_context(self, decision_id: str, snapshot: Any) -> ContextReport:
        """Reports the asker's current context; see :meth:`Client.report_context`."""
        req = pb.ReportContextRequest(decision_id=decision_id, context_snapshot=to_value(snapshot))
        resp = await self._unary(self._stub.ReportContext, req)
        return ContextReport(Decision.from_proto(resp.decision), resp.matched)

    async def get(self, decision_id: str) -> Decision:
        """Reads one decision (with its ``receipt`` once closed, if enabled)."""
        req = pb.GetDecisionRequest(decision_id=decision_id)
        resp = await self._unary(self._stub.GetDecision, req)
        receipt = resp.receipt if resp.HasField("receipt") else None
        return Decision.from_proto(resp.decision, receipt)

    async def list(
        self,
        statuses: Union[None, Status, str, Iterable[Union[Status, str]]] = None,
        kinds: Union[str, Iterable[str]] = (),
        page_size: int = 0,
    ) -> AsyncIterator[Decision]:
        """Iterates (``async for``) over every visible decision, page after page."""
        req = common.list_request(statuses, kinds, page_size)
        while True:
            resp = await self._unary(self._stub.ListDecisions, req)
            for d in resp.decisions:
                yield Decision.from_proto(d)
            if not resp.next_page_token:
                return
            req.page_token = resp.next_page_token

    # -- streams -----------------------------------------------------------

    async def watch(self, decision_id: str) -> AsyncIterator[DecisionEvent]:
        """Follows one decision until it closes; see :meth:`Client.watch`."""
        state = common.WatchState()
        backoff = common.Backoff(self._s.max_backoff)
        since: Optional[float] = None
        req = pb.WatchDecisionRequest(decision_id=decision_id)
        while not state.done:
            call = self._stub.WatchDecision(req, metadata=await self._s.metadata_async())
            try:
                async for resp in call:
                    backoff.reset()
                    since = None
                    ev = state.accept(resp.event)
                    if ev is not None:
                        yield ev
                if not state.done:
                    since = await self._outage_wait(since, backoff, Unavailable("watch ended"))
            except grpc.RpcError as e:
                if rpc_code(e) not in common.RESUMABLE:
                    raise from_rpc_error(e) from e
                since = await self._outage_wait(since, backoff, e)
            finally:
                call.cancel()

    async def wait_any(self, ids: Iterable[str]) -> Decision:
        """Returns the first of the decisions ``ids`` to close, following all
        of them over one resuming stream; see :meth:`Client.wait_any`."""
        state = common.WaitAnyState(ids)
        events = self.stream(include_open=True)
        try:
            async for ev in events:
                if ev.type == EventType.SNAPSHOT_END:
                    for decision_id in state.missing():
                        try:
                            d = await self.get(decision_id)
                        except NotFound:
                            continue
                        if d.is_closed:
                            return d
                    continue
                closed = state.closed(ev)
                if closed is not None:
                    return closed
        finally:
            await events.aclose()
        raise Unavailable("the decision stream ended")  # stream() never ends

    async def stream(
        self,
        include_open: bool = False,
        kinds: Union[str, Iterable[str]] = (),
        surfaces: Union[str, Iterable[str]] = (),
        after_sequence: Optional[int] = None,
    ) -> AsyncGenerator[DecisionEvent, None]:
        """Iterates (``async for``) over decision events, resuming by
        sequence on reconnect; see :meth:`Client.stream`. To end it early,
        ``break`` and ``await events.aclose()`` (or use
        ``contextlib.aclosing``)."""
        state = common.StreamState(include_open, kinds, surfaces, after_sequence)
        backoff = common.Backoff(self._s.max_backoff)
        since: Optional[float] = None
        while True:
            call = self._stub.StreamDecisions(state.request(), metadata=await self._s.metadata_async())
            try:
                async for resp in call:
                    backoff.reset()
                    since = None
                    ev = state.accept(resp.event)
                    if ev is not None:
                        yield ev
                since = await self._outage_wait(since, backoff, Unavailable("stream ended"))
            except grpc.RpcError as e:
                if rpc_code(e) not in common.RESUMABLE:
                    raise from_rpc_error(e) from e
                since = await self._outage_wait(since, backoff, e)
            finally:
                call.cancel()
