"""Typed exceptions, one per gRPC status code witness uses.

Every failed RPC raises a subclass of :class:`WitnessError` carrying the
server's message (``str(err)`` and ``err.message``) and the gRPC code
(``err.code``). witness's INVALID_ARGUMENT messages start with the field
name (``"rationale: must not be empty"``); :attr:`InvalidArgument.field`
extracts it.
"""

from __future__ import annotations

import re
from typing import Dict, Optional, Type

import grpc


class WitnessError(Exception):
    """Base class of every error the SDK raises for a failed RPC."""

    #: The gRPC status code this class stands for (subclasses set it).
    grpc_code: Optional[grpc.StatusCode] = None

    def __init__(self, message: str, code: Optional[grpc.StatusCode] = None) -> None:
        super().__init__(message)
        #: The server's message (the status details).
        self.message = message
        #: The gRPC status code.
        self.code = code if code is not None else self.grpc_code

    def __repr__(self) -> str:
        code = self.code.name if self.code is not None else None
        return f"{type(self).__name__}(code={code}, message={self.message!r})"


class InvalidArgument(WitnessError):
    """INVALID_ARGUMENT: a request field is wrong; the message starts with its name."""

    grpc_code = grpc.StatusCode.INVALID_ARGUMENT

    @property
    def field(self) -> str:
        """The field the message names (the text before the first ``": "``)."""
        return self.message.split(":", 1)[0].strip()


class NotFound(WitnessError):
    """NOT_FOUND: no such decision, or one the caller may not see."""

    grpc_code = grpc.StatusCode.NOT_FOUND


class FailedPrecondition(WitnessError):
    """FAILED_PRECONDITION: wrong state (closed decision, second answer, stale context)."""

    grpc_code = grpc.StatusCode.FAILED_PRECONDITION


class AlreadyExists(WitnessError):
    """ALREADY_EXISTS: the same ``request_id`` was used with other content."""

    grpc_code = grpc.StatusCode.ALREADY_EXISTS


class PermissionDenied(WitnessError):
    """PERMISSION_DENIED: the caller may not do this (wrong role, self-approval, ...)."""

    grpc_code = grpc.StatusCode.PERMISSION_DENIED


class Unauthenticated(WitnessError):
    """UNAUTHENTICATED: no or unknown bearer token."""

    grpc_code = grpc.StatusCode.UNAUTHENTICATED


class Unavailable(WitnessError):
    """UNAVAILABLE: server or store unreachable. Retryable; the SDK retries it itself."""

    grpc_code = grpc.StatusCode.UNAVAILABLE


class ResourceExhausted(WitnessError):
    """RESOURCE_EXHAUSTED: a limit, or a stream consumer that fell behind.

    For a slow stream consumer the message names the sequence to resume
    after, available as :attr:`after_sequence` (``stream()`` resumes by
    itself).
    """

    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED

    @property
    def after_sequence(self) -> Optional[int]:
        """The ``after_sequence = N`` the message names, or ``None``."""
        m = re.search(r"after_sequence\s*=\s*(\d+)", self.message)
        return int(m.group(1)) if m else None


class DeadlineExceeded(WitnessError):
    """DEADLINE_EXCEEDED: the call took longer than the client's ``call_timeout``."""

    grpc_code = grpc.StatusCode.DEADLINE_EXCEEDED


class Cancelled(WitnessError):
    """CANCELLED: the call was cancelled."""

    grpc_code = grpc.StatusCode.CANCELLED


class Internal(WitnessError):
    """INTERNAL (or UNKNOWN): a server-side fault."""

    grpc_code = grpc.StatusCode.INTERNAL


class TokenProviderError(Unauthenticated):
    """The client's token provider raised or returned no token: the call
    failed before anything was sent. The provider's exception, if any, is
    ``__cause__``."""


_BY_CODE: Dict[grpc.StatusCode, Type[WitnessError]] = {
    cls.grpc_code: cls
    for cls in (
        InvalidArgument,
        NotFound,
        FailedPrecondition,
        AlreadyExists,
        PermissionDenied,
        Unauthenticated,
        Unavailable,
        ResourceExhausted,
        DeadlineExceeded,
        Cancelled,
        Internal,
    )
    if cls.grpc_code is not None
}
_BY_CODE[grpc.StatusCode.UNKNOWN] = Internal


def from_rpc_error(err: grpc.RpcError) -> WitnessError:
    """Maps a ``grpc.RpcError`` (sync or asyncio) to the matching :class:`WitnessError`."""
    code = err.code() if callable(getattr(err, "code", None)) else None
    details = err.details() if callable(getattr(err, "details", None)) else None
    message = details or (code.name if code is not None else str(err))
    cls = _BY_CODE.get(code, WitnessError) if code is not None else WitnessError
    return cls(message, code)


def rpc_code(err: BaseException) -> Optional[grpc.StatusCode]:
    """The status code of a ``grpc.RpcError``, or ``None``."""
    fn = getattr(err, "code", None)
    if callable(fn):
        try:
            code = fn()
        except Exception:  # pragma: no cover - defensive
            return None
        return code if isinstance(code, grpc.StatusCode) else None
    return None
