from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STATUS_UNSPECIFIED: _ClassVar[Status]
    STATUS_OPEN: _ClassVar[Status]
    STATUS_APPROVED: _ClassVar[Status]
    STATUS_REJECTED: _ClassVar[Status]
    STATUS_CANCELLED: _ClassVar[Status]
    STATUS_EXPIRED: _ClassVar[Status]
    STATUS_CONTEXT_CHANGED: _ClassVar[Status]

class Verdict(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VERDICT_UNSPECIFIED: _ClassVar[Verdict]
    VERDICT_APPROVE: _ClassVar[Verdict]
    VERDICT_REJECT: _ClassVar[Verdict]

class AnswerOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ANSWER_OUTCOME_UNSPECIFIED: _ClassVar[AnswerOutcome]
    ANSWER_OUTCOME_AWAITING_APPROVALS: _ClassVar[AnswerOutcome]
    ANSWER_OUTCOME_CLOSED: _ClassVar[AnswerOutcome]
    ANSWER_OUTCOME_CONTEXT_CHANGED: _ClassVar[AnswerOutcome]

class EventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_TYPE_UNSPECIFIED: _ClassVar[EventType]
    EVENT_TYPE_CREATED: _ClassVar[EventType]
    EVENT_TYPE_DELIVERED: _ClassVar[EventType]
    EVENT_TYPE_ANSWERED: _ClassVar[EventType]
    EVENT_TYPE_APPROVED: _ClassVar[EventType]
    EVENT_TYPE_REJECTED: _ClassVar[EventType]
    EVENT_TYPE_CANCELLED: _ClassVar[EventType]
    EVENT_TYPE_CONTEXT_CONFIRMED: _ClassVar[EventType]
    EVENT_TYPE_CONTEXT_CHANGED: _ClassVar[EventType]
    EVENT_TYPE_FALLBACK_FIRED: _ClassVar[EventType]
    EVENT_TYPE_EXPIRED: _ClassVar[EventType]
    EVENT_TYPE_SNAPSHOT_END: _ClassVar[EventType]
    EVENT_TYPE_ESCALATED: _ClassVar[EventType]

class EscalationState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ESCALATION_STATE_UNSPECIFIED: _ClassVar[EscalationState]
    ESCALATION_STATE_PENDING: _ClassVar[EscalationState]
    ESCALATION_STATE_FIRED: _ClassVar[EscalationState]
    ESCALATION_STATE_SKIPPED: _ClassVar[EscalationState]
STATUS_UNSPECIFIED: Status
STATUS_OPEN: Status
STATUS_APPROVED: Status
STATUS_REJECTED: Status
STATUS_CANCELLED: Status
STATUS_EXPIRED: Status
STATUS_CONTEXT_CHANGED: Status
VERDICT_UNSPECIFIED: Verdict
VERDICT_APPROVE: Verdict
VERDICT_REJECT: Verdict
ANSWER_OUTCOME_UNSPECIFIED: AnswerOutcome
ANSWER_OUTCOME_AWAITING_APPROVALS: AnswerOutcome
ANSWER_OUTCOME_CLOSED: AnswerOutcome
ANSWER_OUTCOME_CONTEXT_CHANGED: AnswerOutcome
EVENT_TYPE_UNSPECIFIED: EventType
EVENT_TYPE_CREATED: EventType
EVENT_TYPE_DELIVERED: EventType
EVENT_TYPE_ANSWERED: EventType
EVENT_TYPE_APPROVED: EventType
EVENT_TYPE_REJECTED: EventType
EVENT_TYPE_CANCELLED: EventType
EVENT_TYPE_CONTEXT_CONFIRMED: EventType
EVENT_TYPE_CONTEXT_CHANGED: EventType
EVENT_TYPE_FALLBACK_FIRED: EventType
EVENT_TYPE_EXPIRED: EventType
EVENT_TYPE_SNAPSHOT_END: EventType
EVENT_TYPE_ESCALATED: EventType
ESCALATION_STATE_UNSPECIFIED: EscalationState
ESCALATION_STATE_PENDING: EscalationState
ESCALATION_STATE_FIRED: EscalationState
ESCALATION_STATE_SKIPPED: EscalationState

class EscalationLevel(_message.Message):
    __slots__ = ("after", "webhooks", "unless")
    AFTER_FIELD_NUMBER: _ClassVar[int]
    WEBHOOKS_FIELD_NUMBER: _ClassVar[int]
    UNLESS_FIELD_NUMBER: _ClassVar[int]
    after: _duration_pb2.Duration
    webhooks: _containers.RepeatedScalarFieldContainer[str]
    unless: str
    def __init__(self, after: _Optional[_Union[_duration_pb2.Duration, _Mapping]] = ..., webhooks: _Optional[_Iterable[str]] = ..., unless: _Optional[str] = ...) -> None: ...

class Escalation(_message.Message):
    __slots__ = ("level", "after", "webhooks", "unless", "state", "due_at", "fired_at")
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    WEBHOOKS_FIELD_NUMBER: _ClassVar[int]
    UNLESS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    DUE_AT_FIELD_NUMBER: _ClassVar[int]
    FIRED_AT_FIELD_NUMBER: _ClassVar[int]
    level: int
    after: _duration_pb2.Duration
    webhooks: _containers.RepeatedScalarFieldContainer[str]
    unless: str
    state: EscalationState
    due_at: _timestamp_pb2.Timestamp
    fired_at: _timestamp_pb2.Timestamp
    def __init__(self, level: _Optional[int] = ..., after: _Optional[_Union[_duration_pb2.Duration, _Mapping]] = ..., webhooks: _Optional[_Iterable[str]] = ..., unless: _Optional[str] = ..., state: _Optional[_Union[EscalationState, str]] = ..., due_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., fired_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class DecisionPolicy(_message.Message):
    __slots__ = ("matched_kind", "timeout", "on_timeout", "timeout_answer", "ack_window", "fallback", "context_max_age", "allow_self_approval", "escalation", "notify_outcome")
    MATCHED_KIND_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    ON_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_ANSWER_FIELD_NUMBER: _ClassVar[int]
    ACK_WINDOW_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_MAX_AGE_FIELD_NUMBER: _ClassVar[int]
    ALLOW_SELF_APPROVAL_FIELD_NUMBER: _ClassVar[int]
    ESCALATION_FIELD_NUMBER: _ClassVar[int]
    NOTIFY_OUTCOME_FIELD_NUMBER: _ClassVar[int]
    matched_kind: str
    timeout: _duration_pb2.Duration
    on_timeout: str
    timeout_answer: _struct_pb2.Value
    ack_window: _duration_pb2.Duration
    fallback: _containers.RepeatedScalarFieldContainer[str]
    context_max_age: _duration_pb2.Duration
    allow_self_approval: bool
    escalation: _containers.RepeatedCompositeFieldContainer[EscalationLevel]
    notify_outcome: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, matched_kind: _Optional[str] = ..., timeout: _Optional[_Union[_duration_pb2.Duration, _Mapping]] = ..., on_timeout: _Optional[str] = ..., timeout_answer: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., ack_window: _Optional[_Union[_duration_pb2.Duration, _Mapping]] = ..., fallback: _Optional[_Iterable[str]] = ..., context_max_age: _Optional[_Union[_duration_pb2.Duration, _Mapping]] = ..., allow_self_approval: bool = ..., escalation: _Optional[_Iterable[_Union[EscalationLevel, _Mapping]]] = ..., notify_outcome: _Optional[_Iterable[str]] = ...) -> None: ...

class Answer(_message.Message):
    __slots__ = ("verdict", "answer", "rationale", "operator", "submitted_by", "answered_at", "sequence")
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    RATIONALE_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_FIELD_NUMBER: _ClassVar[int]
    SUBMITTED_BY_FIELD_NUMBER: _ClassVar[int]
    ANSWERED_AT_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    verdict: Verdict
    answer: _struct_pb2.Value
    rationale: str
    operator: str
    submitted_by: str
    answered_at: _timestamp_pb2.Timestamp
    sequence: int
    def __init__(self, verdict: _Optional[_Union[Verdict, str]] = ..., answer: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., rationale: _Optional[str] = ..., operator: _Optional[str] = ..., submitted_by: _Optional[str] = ..., answered_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., sequence: _Optional[int] = ...) -> None: ...

class Decision(_message.Message):
    __slots__ = ("id", "kind", "input", "response_schema", "authorized_roles", "surfaces", "required_approvals", "context_hash", "status", "answers", "asked_by", "created_at", "expires_at", "delivered_at", "delivered_via", "closed_at", "version", "last_sequence", "policy", "context_confirmed_at", "close_reason", "closed_by", "fallback_fired", "escalations", "next_escalation_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    AUTHORIZED_ROLES_FIELD_NUMBER: _ClassVar[int]
    SURFACES_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_APPROVALS_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_HASH_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ANSWERS_FIELD_NUMBER: _ClassVar[int]
    ASKED_BY_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    DELIVERED_AT_FIELD_NUMBER: _ClassVar[int]
    DELIVERED_VIA_FIELD_NUMBER: _ClassVar[int]
    CLOSED_AT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_CONFIRMED_AT_FIELD_NUMBER: _ClassVar[int]
    CLOSE_REASON_FIELD_NUMBER: _ClassVar[int]
    CLOSED_BY_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_FIRED_FIELD_NUMBER: _ClassVar[int]
    ESCALATIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_ESCALATION_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    kind: str
    input: _struct_pb2.Value
    response_schema: _struct_pb2.Value
    authorized_roles: _containers.RepeatedScalarFieldContainer[str]
    surfaces: _containers.RepeatedScalarFieldContainer[str]
    required_approvals: int
    context_hash: str
    status: Status
    answers: _containers.RepeatedCompositeFieldContainer[Answer]
    asked_by: str
    created_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    delivered_at: _timestamp_pb2.Timestamp
    delivered_via: str
    closed_at: _timestamp_pb2.Timestamp
    version: int
    last_sequence: int
    policy: DecisionPolicy
    context_confirmed_at: _timestamp_pb2.Timestamp
    close_reason: str
    closed_by: str
    fallback_fired: bool
    escalations: _containers.RepeatedCompositeFieldContainer[Escalation]
    next_escalation_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., kind: _Optional[str] = ..., input: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., response_schema: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., authorized_roles: _Optional[_Iterable[str]] = ..., surfaces: _Optional[_Iterable[str]] = ..., required_approvals: _Optional[int] = ..., context_hash: _Optional[str] = ..., status: _Optional[_Union[Status, str]] = ..., answers: _Optional[_Iterable[_Union[Answer, _Mapping]]] = ..., asked_by: _Optional[str] = ..., created_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., delivered_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., delivered_via: _Optional[str] = ..., closed_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., version: _Optional[int] = ..., last_sequence: _Optional[int] = ..., policy: _Optional[_Union[DecisionPolicy, _Mapping]] = ..., context_confirmed_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., close_reason: _Optional[str] = ..., closed_by: _Optional[str] = ..., fallback_fired: bool = ..., escalations: _Optional[_Iterable[_Union[Escalation, _Mapping]]] = ..., next_escalation_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class DecisionEvent(_message.Message):
    __slots__ = ("sequence", "type", "decision", "at", "snapshot")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    type: EventType
    decision: Decision
    at: _timestamp_pb2.Timestamp
    snapshot: bool
    def __init__(self, sequence: _Optional[int] = ..., type: _Optional[_Union[EventType, str]] = ..., decision: _Optional[_Union[Decision, _Mapping]] = ..., at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., snapshot: bool = ...) -> None: ...

class Receipt(_message.Message):
    __slots__ = ("body", "signature", "key_id")
    BODY_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    body: str
    signature: bytes
    key_id: str
    def __init__(self, body: _Optional[str] = ..., signature: _Optional[bytes] = ..., key_id: _Optional[str] = ...) -> None: ...

class AskRequest(_message.Message):
    __slots__ = ("request_id", "kind", "input", "response_schema", "authorized_roles", "surfaces", "required_approvals", "context_snapshot", "timeout")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    AUTHORIZED_ROLES_FIELD_NUMBER: _ClassVar[int]
    SURFACES_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_APPROVALS_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    kind: str
    input: _struct_pb2.Value
    response_schema: _struct_pb2.Value
    authorized_roles: _containers.RepeatedScalarFieldContainer[str]
    surfaces: _containers.RepeatedScalarFieldContainer[str]
    required_approvals: int
    context_snapshot: _struct_pb2.Value
    timeout: _duration_pb2.Duration
    def __init__(self, request_id: _Optional[str] = ..., kind: _Optional[str] = ..., input: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., response_schema: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., authorized_roles: _Optional[_Iterable[str]] = ..., surfaces: _Optional[_Iterable[str]] = ..., required_approvals: _Optional[int] = ..., context_snapshot: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., timeout: _Optional[_Union[_duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class AskResponse(_message.Message):
    __slots__ = ("decision", "created")
    DECISION_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    decision: Decision
    created: bool
    def __init__(self, decision: _Optional[_Union[Decision, _Mapping]] = ..., created: bool = ...) -> None: ...

class AnswerRequest(_message.Message):
    __slots__ = ("decision_id", "request_id", "verdict", "answer", "rationale", "current_context", "on_behalf_of")
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    RATIONALE_FIELD_NUMBER: _ClassVar[int]
    CURRENT_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    ON_BEHALF_OF_FIELD_NUMBER: _ClassVar[int]
    decision_id: str
    request_id: str
    verdict: Verdict
    answer: _struct_pb2.Value
    rationale: str
    current_context: _struct_pb2.Value
    on_behalf_of: str
    def __init__(self, decision_id: _Optional[str] = ..., request_id: _Optional[str] = ..., verdict: _Optional[_Union[Verdict, str]] = ..., answer: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., rationale: _Optional[str] = ..., current_context: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., on_behalf_of: _Optional[str] = ...) -> None: ...

class AnswerResponse(_message.Message):
    __slots__ = ("decision", "outcome")
    DECISION_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    decision: Decision
    outcome: AnswerOutcome
    def __init__(self, decision: _Optional[_Union[Decision, _Mapping]] = ..., outcome: _Optional[_Union[AnswerOutcome, str]] = ...) -> None: ...

class StreamDecisionsRequest(_message.Message):
    __slots__ = ("include_open", "kinds", "surfaces", "after_sequence")
    INCLUDE_OPEN_FIELD_NUMBER: _ClassVar[int]
    KINDS_FIELD_NUMBER: _ClassVar[int]
    SURFACES_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    include_open: bool
    kinds: _containers.RepeatedScalarFieldContainer[str]
    surfaces: _containers.RepeatedScalarFieldContainer[str]
    after_sequence: int
    def __init__(self, include_open: bool = ..., kinds: _Optional[_Iterable[str]] = ..., surfaces: _Optional[_Iterable[str]] = ..., after_sequence: _Optional[int] = ...) -> None: ...

class StreamDecisionsResponse(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: DecisionEvent
    def __init__(self, event: _Optional[_Union[DecisionEvent, _Mapping]] = ...) -> None: ...

class WatchDecisionRequest(_message.Message):
    __slots__ = ("decision_id",)
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    decision_id: str
    def __init__(self, decision_id: _Optional[str] = ...) -> None: ...

class WatchDecisionResponse(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: DecisionEvent
    def __init__(self, event: _Optional[_Union[DecisionEvent, _Mapping]] = ...) -> None: ...

class AckDeliveryRequest(_message.Message):
    __slots__ = ("decision_id", "surface")
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    SURFACE_FIELD_NUMBER: _ClassVar[int]
    decision_id: str
    surface: str
    def __init__(self, decision_id: _Optional[str] = ..., surface: _Optional[str] = ...) -> None: ...

class AckDeliveryResponse(_message.Message):
    __slots__ = ("accepted", "decision")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    accepted: bool
    decision: Decision
    def __init__(self, accepted: bool = ..., decision: _Optional[_Union[Decision, _Mapping]] = ...) -> None: ...

class CancelRequest(_message.Message):
    __slots__ = ("decision_id", "reason")
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    decision_id: str
    reason: str
    def __init__(self, decision_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class CancelResponse(_message.Message):
    __slots__ = ("decision",)
    DECISION_FIELD_NUMBER: _ClassVar[int]
    decision: Decision
    def __init__(self, decision: _Optional[_Union[Decision, _Mapping]] = ...) -> None: ...

class ReportContextRequest(_message.Message):
    __slots__ = ("decision_id", "context_snapshot")
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    decision_id: str
    context_snapshot: _struct_pb2.Value
    def __init__(self, decision_id: _Optional[str] = ..., context_snapshot: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ...) -> None: ...

class ReportContextResponse(_message.Message):
    __slots__ = ("decision", "matched")
    DECISION_FIELD_NUMBER: _ClassVar[int]
    MATCHED_FIELD_NUMBER: _ClassVar[int]
    decision: Decision
    matched: bool
    def __init__(self, decision: _Optional[_Union[Decision, _Mapping]] = ..., matched: bool = ...) -> None: ...

class GetDecisionRequest(_message.Message):
    __slots__ = ("decision_id",)
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    decision_id: str
    def __init__(self, decision_id: _Optional[str] = ...) -> None: ...

class GetDecisionResponse(_message.Message):
    __slots__ = ("decision", "receipt")
    DECISION_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    decision: Decision
    receipt: Receipt
    def __init__(self, decision: _Optional[_Union[Decision, _Mapping]] = ..., receipt: _Optional[_Union[Receipt, _Mapping]] = ...) -> None: ...

class ListDecisionsRequest(_message.Message):
    __slots__ = ("statuses", "kinds", "page_size", "page_token")
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    KINDS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    statuses: _containers.RepeatedScalarFieldContainer[Status]
    kinds: _containers.RepeatedScalarFieldContainer[str]
    page_size: int
    page_token: str
    def __init__(self, statuses: _Optional[_Iterable[_Union[Status, str]]] = ..., kinds: _Optional[_Iterable[str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListDecisionsResponse(_message.Message):
    __slots__ = ("decisions", "next_page_token")
    DECISIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    decisions: _containers.RepeatedCompositeFieldContainer[Decision]
    next_page_token: str
    def __init__(self, decisions: _Optional[_Iterable[_Union[Decision, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
