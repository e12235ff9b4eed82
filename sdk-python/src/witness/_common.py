"""What the sync and asyncio clients share: connection settings, request
building, retry back-off and the stream resume bookkeeping."""

from __future__ import annotations

import inspect
import logging
import random
import uuid
from datetime import timedelta
from typing import Any, Callable, Iterable, List, Optional, Sequence, Set, Tuple, Union, cast

import grpc
from google.protobuf import duration_pb2

from ._json import optional_value, to_value
from ._proto.witness.v1 import witness_pb2 as pb
from ._errors import InvalidArgument, TokenProviderError
from ._types import Decision, DecisionEvent, EventType, Status, Verdict

#: A context snapshot, or a function returning the current one. ``AsyncClient``
#: also accepts an ``async`` function.
ContextProvider = Union[Callable[[], Any], Any]

Metadata = Tuple[Tuple[str, str], ...]

#: A bearer token, or a function returning the current one (called for every
#: unary call and every stream (re)start). ``AsyncClient`` also accepts a
#: function returning an awaitable.
TokenProvider = Union[str, Callable[[], Any], None]

#: Codes on which a stream is resumed rather than ended.
RESUMABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED})

#: Channel options: reconnect quickly after the server comes back (the gRPC
#: default back-off grows to two minutes) and notice dead connections.
CHANNEL_OPTIONS: List[Tuple[str, Any]] = [
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
]


class Settings:
    """Connection settings parsed from the client constructor's arguments."""

    def __init__(
        self,
        target: str,
        *,
        token: TokenProvider,
        principal: Optional[str],
        roles: Union[None, str, Sequence[str]],
        tls: bool,
        root_certificates: Optional[bytes],
        call_timeout: Optional[float],
        retry_timeout: float,
        reconnect_timeout: Optional[float],
        max_backoff: float,
        options: Optional[Sequence[Tuple[str, Any]]],
    ) -> None:
        if target.startswith("https://"):
            target, tls = target[len("https://") :], True
        elif target.startswith("http://"):
            target = target[len("http://") :]
        self.target = target.rstrip("/")
        self.tls = tls or root_certificates is not None
        #: The target as ``witness --server`` takes it (for :func:`answer_hint`).
        self.server = ("https://" if self.tls else "") + self.target
        self.has_token = bool(token)
        self.root_certificates = root_certificates
        self.call_timeout = call_timeout
        self.retry_timeout = retry_timeout
        self.reconnect_timeout = reconnect_timeout
        self.max_backoff = max_backoff
        merged = dict(CHANNEL_OPTIONS)
        merged.update(dict(options or ()))
        self.options = list(merged.items())
        #: The token provider, or ``None`` for a fixed token (or none).
        self.token_provider: Optional[Callable[[], Any]] = None
        md: List[Tuple[str, str]] = []
        if callable(token):
            self.token_provider = token
            self.has_token = True
        elif token:
            md.append(("authorization", f"Bearer {token}"))
        if principal:
            md.append(("x-witness-principal", principal))
        if roles:
            role_list = roles.split(",") if isinstance(roles, str) else list(roles)
            joined = ",".join(r.strip() for r in role_list if r.strip())
            if joined:
                md.append(("x-witness-roles", joined))
        self._metadata: Metadata = tuple(md)

    def metadata(self) -> Metadata:
        """The metadata of one call or stream start: the fixed headers, and
        ``authorization`` from the token provider when there is one. A
        provider that raises fails the call before anything is sent."""
        if self.token_provider is None:
            return self._metadata
        return self.with_token(call_token_provider(self.token_provider))

    async def metadata_async(self) -> Metadata:
        """:meth:`metadata` for ``AsyncClient``: the provider may also
        return an awaitable."""
        if self.token_provider is None:
            return self._metadata
        token = call_token_provider(self.token_provider)
        if inspect.isawaitable(token):
            try:
                token = await token
            except Exception as e:
                raise TokenProviderError(f"token provider failed: {e!r}") from e
        return self.with_token(token)

    def with_token(self, token: Any) -> Metadata:
        """The fixed headers plus ``authorization`` for a provided token."""
        if not isinstance(token, str) or not token:
            raise TokenProviderError(
                f"token provider returned {type(token).__name__}, not a non-empty str"
            )
        return (("authorization", f"Bearer {token}"),) + self._metadata

    def credentials(self) -> Optional[grpc.ChannelCredentials]:
        """TLS channel credentials, or ``None`` for a plaintext channel."""
        if not self.tls:
            return None
        return grpc.ssl_channel_credentials(root_certificates=self.root_certificates)


def call_token_provider(provider: Callable[[], Any]) -> Any:
    """Calls a token provider, turning its failure into
    :class:`TokenProviderError` (with the original as ``__cause__``)."""
    try:
        return provider()
    except Exception as e:
        raise TokenProviderError(f"token provider failed: {e!r}") from e


#: The CLI's default ``--server``: the hint leaves it out.
DEFAULT_SERVER = "127.0.0.1:50051"

_BIDI = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _shown(s: str) -> str:
    """Escapes control characters and bidirectional overrides, as the CLI
    does, so a kind cannot forge a line or recolour a terminal."""
    out = []
    for c in s:
        n = ord(c)
        if c == "\n":
            out.append("\\n")
        elif c == "\r":
            out.append("\\r")
        elif c == "\t":
            out.append("\\t")
        elif n < 0x20 or 0x7F <= n < 0xA0:
            out.append(f"\\x{n:02x}")
        elif c in _BIDI:
            out.append(f"\\u{{{n:x}}}")
        else:
            out.append(c)
    return "".join(out)


def answer_hint(decision: Decision, *, server: Optional[str] = None, token: bool = False) -> str:
    """How a human answers ``decision`` with the ``witness`` CLI: the two
    lines ``witness ask --wait`` prints while it waits::

        waiting for a human to decide deploy.production (decision ID); answer it with:
          witness answer ID approve --rationale "..." --as NAME --roles sre

    ``server`` (``HOST:PORT`` or a URL) adds ``--server`` unless it is the
    CLI's default; ``token=True`` shows ``--token TOKEN`` instead of the
    dev-mode ``--as NAME --roles ROLE``.
    """
    where = ""
    if server:
        bare = server[len("http://"):] if server.startswith("http://") else server
        if bare.rstrip("/") != DEFAULT_SERVER:
            where = f" --server {_shown(server.rstrip('/'))}"
    if token:
        who = " --token TOKEN"
    else:
        role = decision.authorized_roles[0] if decision.authorized_roles else "ROLE"
        who = f" --as NAME --roles {_shown(role)}"
    i = _shown(decision.id)
    return (
        f"waiting for a human to decide {_shown(decision.kind)} (decision {i}); answer it with:\n"
        f'  witness answer {i} approve --rationale "..."{who}{where}'
    )


def log_waiting(log: logging.Logger, settings: "Settings", decision: Decision) -> None:
    """Logs the answer hint at INFO on the ``witness`` logger, on one line."""
    if log.isEnabledFor(logging.INFO):
        hint = answer_hint(decision, server=settings.server, token=settings.has_token)
        log.info("witness: %s", hint.replace("\n  ", " "))


class Backoff:
    """Exponential back-off with jitter: 50 ms doubling up to ``cap`` seconds."""

    def __init__(self, cap: float, initial: float = 0.05) -> None:
        self.cap = cap
        self.initial = initial
        self.delay = initial

    def next(self) -> float:
        """The next delay to wait (and doubles the one after)."""
        d = min(self.delay, self.cap)
        self.delay = min(self.delay * 2, self.cap)
        return d * (0.5 + random.random() / 2)

    def reset(self) -> None:
        """Back to the initial delay (call after a success)."""
        self.delay = self.initial


def new_request_id() -> str:
    """A fresh idempotency key (UUIDv4 text)."""
    return str(uuid.uuid4())


def duration(value: Union[None, float, int, timedelta]) -> Optional[duration_pb2.Duration]:
    """Seconds (or a ``timedelta``) as a ``Duration``; ``None`` stays unset."""
    if value is None:
        return None
    if not isinstance(value, timedelta):
        value = timedelta(seconds=value)
    d = duration_pb2.Duration()
    d.FromTimedelta(value)
    return d


def _strings(name: str, values: Union[str, Iterable[str]]) -> List[str]:
    if isinstance(values, str):
        return [values]
    out = list(values)
    for v in out:
        if not isinstance(v, str):
            raise TypeError(f"{name}: expected strings, got {type(v).__name__}")
    return out


def is_provider(context: Any) -> bool:
    """True when ``context`` is a function to call rather than a snapshot."""
    return callable(context)


def ask_request(
    kind: str,
    input: Any,
    *,
    authorized_roles: Union[str, Iterable[str]],
    surfaces: Union[str, Iterable[str]],
    response_schema: Any,
    required_approvals: int,
    context_snapshot: Any,
    has_context: bool,
    timeout: Union[None, float, int, timedelta],
    request_id: Optional[str],
) -> pb.AskRequest:
    """Builds an ``AskRequest`` (with a generated ``request_id`` when none is given)."""
    req = pb.AskRequest(
        request_id=request_id or new_request_id(),
        kind=kind,
        input=to_value(input),
        authorized_roles=_strings("authorized_roles", authorized_roles),
        surfaces=_strings("surfaces", surfaces),
        required_approvals=required_approvals,
    )
    if response_schema is not None:
        req.response_schema.CopyFrom(to_value(response_schema))
    if has_context:
        req.context_snapshot.CopyFrom(to_value(context_snapshot))
    ttl = duration(timeout)
    if ttl is not None:
        req.timeout.CopyFrom(ttl)
    return req


def answer_request(
    decision_id: str,
    verdict: Union[Verdict, str, int],
    rationale: str,
    *,
    answer: Any,
    current_context: Any,
    on_behalf_of: str,
    request_id: Optional[str],
) -> pb.AnswerRequest:
    """Builds an ``AnswerRequest`` (with a generated ``request_id`` when none is given)."""
    req = pb.AnswerRequest(
        decision_id=decision_id,
        request_id=request_id or new_request_id(),
        verdict=cast(Any, int(Verdict.parse(verdict))),
        rationale=rationale,
        on_behalf_of=on_behalf_of,
    )
    value = optional_value(answer)
    if value is not None:
        req.answer.CopyFrom(value)
    ctx = optional_value(current_context)
    if ctx is not None:
        req.current_context.CopyFrom(ctx)
    return req


def list_request(
    statuses: Union[None, Status, str, Iterable[Union[Status, str, int]]],
    kinds: Union[str, Iterable[str]],
    page_size: int,
) -> pb.ListDecisionsRequest:
    """Builds the first ``ListDecisionsRequest`` of a listing."""
    if statuses is None:
        items: List[Any] = []
    elif isinstance(statuses, (str, Status)):
        items = [statuses]
    else:
        items = list(statuses)
    return pb.ListDecisionsRequest(
        statuses=cast(Any, [int(Status.parse(s)) for s in items]),
        kinds=_strings("kinds", kinds),
        page_size=page_size,
    )


def context_interval(default: float, decision: Optional[Decision]) -> float:
    """How often to re-confirm the context: ``default`` seconds, but at most
    a third of the decision's ``context_max_age`` so a confirmation is
    always fresh when the last approval arrives."""
    interval = default
    if decision is not None and decision.policy is not None:
        max_age = decision.policy.context_max_age
        if max_age is not None and max_age.total_seconds() > 0:
            interval = min(interval, max_age.total_seconds() / 3)
    return max(interval, 0.05)


def wants_report(event: DecisionEvent) -> bool:
    """Whether ``wait()`` should re-confirm the context after this event:
    after every change of an open decision except its own confirmations."""
    d = event.decision
    return d is not None and d.is_open and event.type != EventType.CONTEXT_CONFIRMED


class StreamState:
    """Resume bookkeeping for ``stream()``: which request to (re)send and
    which received events to pass on, so that reconnects neither lose nor
    repeat events.

    The first connection always asks for the snapshot, even when the caller
    did not: ``SNAPSHOT_END`` carries the log position, which is what makes
    a reconnect before the first live event gap-free. Snapshot events are
    passed on only when the caller asked for them. Live events are passed on
    only when their sequence is above the last one passed on, and reconnects
    resume with ``after_sequence`` = that sequence.
    """

    def __init__(
        self,
        include_open: bool,
        kinds: Union[str, Iterable[str]],
        surfaces: Union[str, Iterable[str]],
        after_sequence: Optional[int],
    ) -> None:
        if after_sequence is not None and (
            isinstance(after_sequence, bool) or not isinstance(after_sequence, int)
            or after_sequence < 0
        ):
            raise ValueError("after_sequence: must be a non-negative integer or None")
        self.include_open = include_open
        self.kinds = _strings("kinds", kinds)
        self.surfaces = _strings("surfaces", surfaces)
        # The last log position passed on; None until one is known (0 is a
        # position: "before the first event").
        self.cursor: Optional[int] = after_sequence
        self.live = after_sequence is not None
        self.end_sent = False
        self.snapshot_seen: Set[Tuple[str, int]] = set()

    def request(self) -> pb.StreamDecisionsRequest:
        """The request for the next (re)connection."""
        if self.cursor is not None:
            return pb.StreamDecisionsRequest(
                kinds=self.kinds, surfaces=self.surfaces, after_sequence=self.cursor
            )
        # No position to resume from yet: snapshot again.
        return pb.StreamDecisionsRequest(
            include_open=True, kinds=self.kinds, surfaces=self.surfaces
        )

    def accept(self, m: pb.DecisionEvent) -> Optional[DecisionEvent]:
        """The event to yield for a received message, or ``None`` to skip it."""
        if m.type == pb.EVENT_TYPE_SNAPSHOT_END:
            first = not self.live
            self.live = True
            self.cursor = max(self.cursor or 0, m.sequence)
            if self.include_open and not self.end_sent and first:
                self.end_sent = True
                return DecisionEvent.from_proto(m)
            return None
        if m.snapshot:
            key = (m.decision.id, m.sequence)
            if key in self.snapshot_seen:
                return None
            self.snapshot_seen.add(key)
            # A re-snapshot while live (the log was empty at subscription)
            # stands in for live events missed: always pass it on.
            if self.include_open or self.live:
                return DecisionEvent.from_proto(m)
            return None
        if self.cursor is not None and m.sequence <= self.cursor:
            return None
        self.cursor = m.sequence
        self.live = True
        return DecisionEvent.from_proto(m)


class WaitAnyState:
    """Filter for ``wait_any()``: one ``stream(include_open=True)`` over
    every visible decision, narrowed to ``ids`` here. Ids missing from the
    snapshot closed before it (or are not visible): ``missing()`` lists them
    for a ``get()`` each, once, at ``SNAPSHOT_END``."""

    def __init__(self, ids: Iterable[str]) -> None:
        if isinstance(ids, str):
            ids = [ids]
        self.ids = set(ids)
        if not self.ids:
            raise InvalidArgument("ids: name at least one decision")
        self.open_seen: Set[str] = set()

    def closed(self, event: DecisionEvent) -> Optional[Decision]:
        """The decision, when the event shows one of ``ids`` closed."""
        d = event.decision
        if d is None or d.id not in self.ids:
            return None
        if event.snapshot and d.is_open:
            self.open_seen.add(d.id)
        return d if d.is_closed else None

    def missing(self) -> List[str]:
        """Ids the snapshot did not show open, in a stable order."""
        return sorted(self.ids - self.open_seen)


class WatchState:
    """Bookkeeping for ``watch()``: after a reconnect the server resends the
    current state; pass it on only if the decision changed meanwhile."""

    def __init__(self) -> None:
        self.version = 0
        self.done = False

    def accept(self, m: pb.DecisionEvent) -> Optional[DecisionEvent]:
        """The event to yield for a received message, or ``None`` to skip it."""
        if not m.HasField("decision") or m.decision.version <= self.version:
            return None
        self.version = m.decision.version
        event = DecisionEvent.from_proto(m)
        if event.decision is not None and event.decision.is_closed:
            self.done = True
        return event
