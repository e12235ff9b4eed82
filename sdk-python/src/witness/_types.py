"""Friendly, immutable views of witness messages.

Every RPC result is converted from its protobuf message into the frozen
dataclasses below: JSON fields become plain Python values, timestamps
become timezone-aware ``datetime`` (UTC), durations become ``timedelta``,
enums become the ``IntEnum`` classes below, and unset optional fields are
``None``. The original message stays available as ``.proto`` on every
dataclass, for fields added to the API after this SDK was written.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Optional, Tuple, Union, cast

from google.protobuf import duration_pb2, timestamp_pb2

from ._json import JSON, from_value
from ._proto.witness.v1 import witness_pb2 as pb


class Status(enum.IntEnum):
    """Where a decision is in its life: ``OPEN``, then one terminal status."""

    UNSPECIFIED = pb.STATUS_UNSPECIFIED
    OPEN = pb.STATUS_OPEN
    APPROVED = pb.STATUS_APPROVED
    REJECTED = pb.STATUS_REJECTED
    CANCELLED = pb.STATUS_CANCELLED
    EXPIRED = pb.STATUS_EXPIRED
    CONTEXT_CHANGED = pb.STATUS_CONTEXT_CHANGED

    @property
    def is_terminal(self) -> bool:
        """True for every status but ``OPEN`` (and the never-sent ``UNSPECIFIED``)."""
        return self not in (Status.OPEN, Status.UNSPECIFIED)

    @classmethod
    def parse(cls, value: Union["Status", str, int]) -> "Status":
        """Accepts a ``Status``, its name (``"open"``, ``"STATUS_OPEN"``) or number."""
        return cast("Status", _parse_enum(cls, value, "STATUS_"))


class Verdict(enum.IntEnum):
    """An operator's verdict."""

    UNSPECIFIED = pb.VERDICT_UNSPECIFIED
    APPROVE = pb.VERDICT_APPROVE
    REJECT = pb.VERDICT_REJECT

    @classmethod
    def parse(cls, value: Union["Verdict", str, int]) -> "Verdict":
        """Accepts a ``Verdict``, its name (``"approve"``, ``"VERDICT_REJECT"``) or number."""
        return cast("Verdict", _parse_enum(cls, value, "VERDICT_"))


class AnswerOutcome(enum.IntEnum):
    """What an answer did to its decision."""

    UNSPECIFIED = pb.ANSWER_OUTCOME_UNSPECIFIED
    AWAITING_APPROVALS = pb.ANSWER_OUTCOME_AWAITING_APPROVALS
    CLOSED = pb.ANSWER_OUTCOME_CLOSED
    CONTEXT_CHANGED = pb.ANSWER_OUTCOME_CONTEXT_CHANGED


class EventType(enum.IntEnum):
    """The kind of change an event records (``SNAPSHOT_END`` is a stream marker)."""

    UNSPECIFIED = pb.EVENT_TYPE_UNSPECIFIED
    CREATED = pb.EVENT_TYPE_CREATED
    DELIVERED = pb.EVENT_TYPE_DELIVERED
    ANSWERED = pb.EVENT_TYPE_ANSWERED
    APPROVED = pb.EVENT_TYPE_APPROVED
    REJECTED = pb.EVENT_TYPE_REJECTED
    CANCELLED = pb.EVENT_TYPE_CANCELLED
    CONTEXT_CONFIRMED = pb.EVENT_TYPE_CONTEXT_CONFIRMED
    CONTEXT_CHANGED = pb.EVENT_TYPE_CONTEXT_CHANGED
    FALLBACK_FIRED = pb.EVENT_TYPE_FALLBACK_FIRED
    EXPIRED = pb.EVENT_TYPE_EXPIRED
    SNAPSHOT_END = pb.EVENT_TYPE_SNAPSHOT_END
    ESCALATED = pb.EVENT_TYPE_ESCALATED


def _parse_enum(cls: Any, value: Any, prefix: str) -> Any:
    if isinstance(value, cls):
        return value
    if isinstance(value, str):
        name = value.strip().upper()
        if name.startswith(prefix):
            name = name[len(prefix) :]
        try:
            return cls[name]
        except KeyError:
            raise ValueError(f"unknown {cls.__name__}: {value!r}") from None
    return cls(value)


def _enum(cls: Any, number: int) -> Any:
    try:
        return cls(number)
    except ValueError:  # a value added to the API after this SDK
        return cls.UNSPECIFIED


def _ts(msg: Any, name: str) -> Optional[datetime]:
    if not msg.HasField(name):
        return None
    t: timestamp_pb2.Timestamp = getattr(msg, name)
    return datetime.fromtimestamp(t.seconds, tz=timezone.utc) + timedelta(
        microseconds=t.nanos // 1000
    )


def _dur(msg: Any, name: str) -> Optional[timedelta]:
    if not msg.HasField(name):
        return None
    d: duration_pb2.Duration = getattr(msg, name)
    return timedelta(seconds=d.seconds, microseconds=d.nanos // 1000)


def _json(msg: Any, name: str) -> JSON:
    return from_value(getattr(msg, name)) if msg.HasField(name) else None


@dataclass(frozen=True)
class DecisionPolicy:
    """The effective policy copied into a decision when it was asked."""

    matched_kind: str
    """The policy's kind glob that matched (empty for the default policy)."""
    timeout: Optional[timedelta]
    """Time to live from creation; ``None``: no expiry."""
    on_timeout: str
    """``"expire"``, ``"approve"`` or ``"reject"``."""
    timeout_answer: JSON
    """The answer recorded when ``on_timeout`` approves or rejects."""
    ack_window: Optional[timedelta]
    """How long a surface has to acknowledge before the fallback fires."""
    fallback: Tuple[str, ...]
    """Webhook names paged when no acknowledgement comes in time."""
    context_max_age: Optional[timedelta]
    """How fresh a context confirmation must be to complete a quorum of 2+."""
    allow_self_approval: bool
    """Whether the asker may answer its own decision."""
    proto: pb.DecisionPolicy = field(repr=False, compare=False)
    """The message this was converted from."""

    @classmethod
    def from_proto(cls, m: pb.DecisionPolicy) -> "DecisionPolicy":
        """Converts a ``witness.v1.DecisionPolicy`` message."""
        return cls(
            matched_kind=m.matched_kind,
            timeout=_dur(m, "timeout"),
            on_timeout=m.on_timeout,
            timeout_answer=_json(m, "timeout_answer"),
            ack_window=_dur(m, "ack_window"),
            fallback=tuple(m.fallback),
            context_max_age=_dur(m, "context_max_age"),
            allow_self_approval=m.allow_self_approval,
            proto=m,
        )


@dataclass(frozen=True)
class Answer:
    """One operator's recorded answer."""

    verdict: Verdict
    answer: JSON
    """The answer payload (``None`` when none was given)."""
    rationale: str
    operator: str
    """The operator the answer counts for."""
    submitted_by: str
    """The principal that sent it when acting on behalf of ``operator``; else empty."""
    answered_at: Optional[datetime]
    sequence: int
    """Sequence of the ANSWERED event."""
    proto: pb.Answer = field(repr=False, compare=False)

    @classmethod
    def from_proto(cls, m: pb.Answer) -> "Answer":
        """Converts a ``witness.v1.Answer`` message."""
        return cls(
            verdict=_enum(Verdict, m.verdict),
            answer=_json(m, "answer"),
            rationale=m.rationale,
            operator=m.operator,
            submitted_by=m.submitted_by,
            answered_at=_ts(m, "answered_at"),
            sequence=m.sequence,
            proto=m,
        )


@dataclass(frozen=True)
class Receipt:
    """A signed statement of how a closed decision ended (see ``Client.get``)."""

    body: str
    """The receipt body as canonical JSON text."""
    signature: bytes
    """Ed25519 signature over the UTF-8 bytes of ``body``."""
    key_id: str

    @classmethod
    def from_proto(cls, m: pb.Receipt) -> "Receipt":
        """Converts a ``witness.v1.Receipt`` message."""
        return cls(body=m.body, signature=bytes(m.signature), key_id=m.key_id)


@dataclass(frozen=True)
class Decision:
    """One question for humans, as witness holds it now.

    Use ``status`` (a :class:`Status`) or the helpers ``is_open``,
    ``approved``, ``rejected`` to act on it; ``answers`` holds every answer
    recorded so far, oldest first.
    """

    id: str
    kind: str
    input: JSON
    response_schema: JSON
    """The JSON Schema answers must satisfy, or ``None``."""
    authorized_roles: Tuple[str, ...]
    surfaces: Tuple[str, ...]
    required_approvals: int
    context_hash: str
    """Hex SHA-256 of the canonical context snapshot; empty without one."""
    status: Status
    answers: Tuple[Answer, ...]
    asked_by: str
    created_at: Optional[datetime]
    expires_at: Optional[datetime]
    delivered_at: Optional[datetime]
    delivered_via: str
    closed_at: Optional[datetime]
    version: int
    """Increments on every change."""
    last_sequence: int
    """Sequence of the latest event that changed it."""
    policy: Optional[DecisionPolicy]
    context_confirmed_at: Optional[datetime]
    close_reason: str
    closed_by: str
    fallback_fired: bool
    receipt: Optional[Receipt] = None
    """The signed receipt; only set on decisions returned by ``get()``."""
    proto: pb.Decision = field(default_factory=pb.Decision, repr=False, compare=False)

    @property
    def is_open(self) -> bool:
        """True while the decision waits for answers."""
        return self.status == Status.OPEN

    @property
    def is_closed(self) -> bool:
        """True once the decision reached a terminal status."""
        return self.status.is_terminal

    @property
    def approved(self) -> bool:
        """True when the decision closed ``APPROVED``: the only "go ahead"."""
        return self.status == Status.APPROVED

    @property
    def rejected(self) -> bool:
        """True when the decision closed ``REJECTED`` (an expiry is not a rejection)."""
        return self.status == Status.REJECTED

    @property
    def approvals(self) -> int:
        """How many approvals have been recorded so far."""
        return sum(1 for a in self.answers if a.verdict == Verdict.APPROVE)

    @classmethod
    def from_proto(cls, m: pb.Decision, receipt: Optional[pb.Receipt] = None) -> "Decision":
        """Converts a ``witness.v1.Decision`` message (and optionally its receipt)."""
        return cls(
            id=m.id,
            kind=m.kind,
            input=_json(m, "input"),
            response_schema=_json(m, "response_schema"),
            authorized_roles=tuple(m.authorized_roles),
            surfaces=tuple(m.surfaces),
            required_approvals=m.required_approvals,
            context_hash=m.context_hash,
            status=_enum(Status, m.status),
            answers=tuple(Answer.from_proto(a) for a in m.answers),
            asked_by=m.asked_by,
            created_at=_ts(m, "created_at"),
            expires_at=_ts(m, "expires_at"),
            delivered_at=_ts(m, "delivered_at"),
            delivered_via=m.delivered_via,
            closed_at=_ts(m, "closed_at"),
            version=m.version,
            last_sequence=m.last_sequence,
            policy=DecisionPolicy.from_proto(m.policy) if m.HasField("policy") else None,
            context_confirmed_at=_ts(m, "context_confirmed_at"),
            close_reason=m.close_reason,
            closed_by=m.closed_by,
            fallback_fired=m.fallback_fired,
            receipt=Receipt.from_proto(receipt) if receipt is not None else None,
            proto=m,
        )


@dataclass(frozen=True)
class DecisionEvent:
    """A change to a decision, as ``stream()`` and ``watch()`` deliver it.

    ``snapshot`` is true for the state sent before live events (the open
    decisions of ``stream(include_open=True)``, the first event of
    ``watch()``); ``type == EventType.SNAPSHOT_END`` marks the end of that
    snapshot and has no ``decision``.
    """

    sequence: int
    """Global position in the event log (see the API docs for snapshots)."""
    type: EventType
    decision: Optional[Decision]
    """The decision's state after the event; ``None`` on ``SNAPSHOT_END``."""
    at: Optional[datetime]
    snapshot: bool
    proto: pb.DecisionEvent = field(repr=False, compare=False)

    @classmethod
    def from_proto(cls, m: pb.DecisionEvent) -> "DecisionEvent":
        """Converts a ``witness.v1.DecisionEvent`` message."""
        return cls(
            sequence=m.sequence,
            type=_enum(EventType, m.type),
            decision=Decision.from_proto(m.decision) if m.HasField("decision") else None,
            at=_ts(m, "at"),
            snapshot=m.snapshot,
            proto=m,
        )


@dataclass(frozen=True)
class AnswerResult:
    """What ``answer()`` returns: the decision after the answer and what it did."""

    decision: Decision
    outcome: AnswerOutcome


@dataclass(frozen=True)
class AckResult:
    """What ``ack()`` returns; ``accepted`` is false on a closed decision."""

    accepted: bool
    decision: Decision


@dataclass(frozen=True)
class ContextReport:
    """What ``report_context()`` returns.

    ``matched`` is true when the snapshot equals the one asked with (a
    confirmation was recorded); false when the decision just closed
    ``CONTEXT_CHANGED``.
    """

    decision: Decision
    matched: bool
