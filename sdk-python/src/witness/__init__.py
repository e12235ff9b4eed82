"""witness: the Python SDK of the witness human-in-the-loop decision service.

A program that must not act without a person's judgment asks, and blocks
until an authorised human answers::

    import witness

    with witness.Client("127.0.0.1:50051", principal="deployer") as client:
        decision = client.ask(
            "deploy.production",
            {"service": "api", "version": "1.4.2"},
            authorized_roles=["sre"],
            on_created=lambda d: print(witness.answer_hint(d)),
        )
    if decision.approved:
        deploy()

:class:`Client` is synchronous, :class:`AsyncClient` its asyncio twin.
Results are frozen dataclasses (:class:`Decision`, :class:`DecisionEvent`,
...) with plain Python JSON values; failed calls raise a subclass of
:class:`WitnessError`. The generated protobuf/gRPC modules are available as
``witness.pb`` and ``witness.pb_grpc``.
"""

from ._aio import AsyncClient
from ._client import Client
from ._common import answer_hint
from ._errors import (
    AlreadyExists,
    Cancelled,
    DeadlineExceeded,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    TokenProviderError,
    Unauthenticated,
    Unavailable,
    WitnessError,
)
from ._json import JSON, from_value, to_value
from ._proto.witness.v1 import witness_pb2 as pb
from ._proto.witness.v1 import witness_pb2_grpc as pb_grpc
from ._types import (
    AckResult,
    Answer,
    AnswerOutcome,
    AnswerResult,
    ContextReport,
    Decision,
    DecisionEvent,
    DecisionPolicy,
    EventType,
    Receipt,
    Status,
    Verdict,
)

__version__ = "0.2.0"

__all__ = [
    "AckResult",
    "AlreadyExists",
    "Answer",
    "AnswerOutcome",
    "AnswerResult",
    "AsyncClient",
    "Cancelled",
    "Client",
    "ContextReport",
    "DeadlineExceeded",
    "Decision",
    "DecisionEvent",
    "DecisionPolicy",
    "EventType",
    "FailedPrecondition",
    "Internal",
    "InvalidArgument",
    "JSON",
    "NotFound",
    "PermissionDenied",
    "Receipt",
    "ResourceExhausted",
    "Status",
    "TokenProviderError",
    "Unauthenticated",
    "Unavailable",
    "Verdict",
    "WitnessError",
    "answer_hint",
    "from_value",
    "pb",
    "pb_grpc",
    "to_value",
]
