/**
 * Typed errors. Every failed call rejects with a {@link WitnessError}; the
 * status codes that callers act on have their own subclass so that
 * `err instanceof NotFoundError` works.
 *
 * @module
 */
import { Code, ConnectError } from "@connectrpc/connect";

/** The gRPC status code names, as the server sends them. */
export type WitnessErrorCode =
  | "CANCELLED"
  | "UNKNOWN"
  | "INVALID_ARGUMENT"
  | "DEADLINE_EXCEEDED"
  | "NOT_FOUND"
  | "ALREADY_EXISTS"
  | "PERMISSION_DENIED"
  | "RESOURCE_EXHAUSTED"
  | "FAILED_PRECONDITION"
  | "ABORTED"
  | "OUT_OF_RANGE"
  | "UNIMPLEMENTED"
  | "INTERNAL"
  | "UNAVAILABLE"
  | "DATA_LOSS"
  | "UNAUTHENTICATED";

const CODE_NAMES: Record<Code, WitnessErrorCode> = {
  [Code.Canceled]: "CANCELLED",
  [Code.Unknown]: "UNKNOWN",
  [Code.InvalidArgument]: "INVALID_ARGUMENT",
  [Code.DeadlineExceeded]: "DEADLINE_EXCEEDED",
  [Code.NotFound]: "NOT_FOUND",
  [Code.AlreadyExists]: "ALREADY_EXISTS",
  [Code.PermissionDenied]: "PERMISSION_DENIED",
  [Code.ResourceExhausted]: "RESOURCE_EXHAUSTED",
  [Code.FailedPrecondition]: "FAILED_PRECONDITION",
  [Code.Aborted]: "ABORTED",
  [Code.OutOfRange]: "OUT_OF_RANGE",
  [Code.Unimplemented]: "UNIMPLEMENTED",
  [Code.Internal]: "INTERNAL",
  [Code.Unavailable]: "UNAVAILABLE",
  [Code.DataLoss]: "DATA_LOSS",
  [Code.Unauthenticated]: "UNAUTHENTICATED",
};

/**
 * Base class of every error the SDK raises for a failed RPC.
 *
 * `message` is the server's message as sent (for example
 * `rationale: must not be empty`), without any code prefix.
 */
export class WitnessError extends Error {
  /** The gRPC status code name, e.g. `NOT_FOUND`. */
  readonly code: WitnessErrorCode;
  /** The numeric gRPC status code. */
  readonly grpcCode: number;

  constructor(code: Code, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = CODE_NAMES[code] ?? "UNKNOWN";
    this.grpcCode = code;
  }

  /** Whether retrying the same call later may succeed (UNAVAILABLE). */
  get retryable(): boolean {
    return this.grpcCode === Code.Unavailable;
  }
}

/**
 * INVALID_ARGUMENT: the request was malformed. The server's message starts
 * with the field name (`rationale: must not be empty`), available as
 * {@link InvalidArgumentError.field}.
 */
export class InvalidArgumentError extends WitnessError {
  /** The field the server named, e.g. `rationale` or `answer`. */
  get field(): string | undefined {
    const m = /^([A-Za-z_][\w.[\]]*):/.exec(this.message);
    return m?.[1];
  }
}

/** NOT_FOUND: the decision does not exist, or the caller may not see it. */
export class NotFoundError extends WitnessError {}

/**
 * FAILED_PRECONDITION: the decision is in the wrong state (closed, already
 * answered by this operator, or the context must be re-confirmed).
 */
export class FailedPreconditionError extends WitnessError {}

/** ALREADY_EXISTS: the same `requestId` was used with other content. */
export class AlreadyExistsError extends WitnessError {}

/** PERMISSION_DENIED: the caller is authenticated but may not do this. */
export class PermissionDeniedError extends WitnessError {}

/** UNAUTHENTICATED: no valid bearer token (or no principal in dev mode). */
export class UnauthenticatedError extends WitnessError {}

/**
 * The client's token provider threw or returned no token: the call failed
 * before anything was sent. The provider's error is `cause`.
 */
export class TokenProviderError extends UnauthenticatedError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(Code.Unauthenticated, message, options);
  }
}

/** UNAVAILABLE: the server or its store is down; retrying is safe. */
export class UnavailableError extends WitnessError {}

/**
 * RESOURCE_EXHAUSTED: a limit was hit, for example a stream consumer that
 * fell too far behind. For streams the server names the sequence to resume
 * after ({@link ResourceExhaustedError.afterSequence}).
 */
export class ResourceExhaustedError extends WitnessError {
  /** The `after_sequence = N` the server's message names, if any. */
  get afterSequence(): number | undefined {
    const m = /after_sequence = (\d+)/.exec(this.message);
    return m ? Number(m[1]) : undefined;
  }
}

/** DEADLINE_EXCEEDED: the call took longer than its timeout. */
export class DeadlineExceededError extends WitnessError {}

const CLASSES: Partial<Record<Code, typeof WitnessError>> = {
  [Code.InvalidArgument]: InvalidArgumentError,
  [Code.NotFound]: NotFoundError,
  [Code.FailedPrecondition]: FailedPreconditionError,
  [Code.AlreadyExists]: AlreadyExistsError,
  [Code.PermissionDenied]: PermissionDeniedError,
  [Code.Unauthenticated]: UnauthenticatedError,
  [Code.Unavailable]: UnavailableError,
  [Code.ResourceExhausted]: ResourceExhaustedError,
  [Code.DeadlineExceeded]: DeadlineExceededError,
};

/**
 * Converts anything thrown by a Connect call into a {@link WitnessError}
 * (errors that already are one are returned as they are).
 */
export function toWitnessError(err: unknown): WitnessError {
  if (err instanceof WitnessError) return err;
  // An error thrown by an interceptor (the token provider) arrives wrapped.
  if (err instanceof ConnectError && err.cause instanceof WitnessError) return err.cause;
  const ce = ConnectError.from(err);
  const Cls = CLASSES[ce.code] ?? WitnessError;
  return new Cls(ce.code, ce.rawMessage, { cause: err });
}
