/**
 * The plain-object shapes the SDK returns, and their conversion from the
 * generated protobuf messages. JSON fields (`input`, `answer`, ...) are plain
 * JavaScript values; timestamps are `Date`s; sequences and versions are
 * `number`s (exact up to 2^53).
 *
 * @module
 */
import { fromJson, toJson, type JsonValue } from "@bufbuild/protobuf";
import {
  ValueSchema,
  durationMs,
  timestampDate,
  type Duration,
  type Timestamp,
  type Value,
} from "@bufbuild/protobuf/wkt";
import * as pb from "./gen/witness/v1/witness_pb.js";

export type { JsonValue };

/** Where a decision is in its life: `OPEN`, then exactly one terminal status. */
export type DecisionStatus =
  | "OPEN"
  | "APPROVED"
  | "REJECTED"
  | "CANCELLED"
  | "EXPIRED"
  | "CONTEXT_CHANGED";

/** An operator's verdict. */
export type Verdict = "approve" | "reject";

/**
 * A bearer token, or a function returning the current one: it is called
 * for every unary call and every stream (re)start, so a provider that
 * caches and refreshes a short-lived token is always current.
 */
export type TokenProvider = string | (() => string | Promise<string>);

/** What an answer did to its decision. */
export type AnswerOutcome = "AWAITING_APPROVALS" | "CLOSED" | "CONTEXT_CHANGED";

/** The kind of change an event records (`SNAPSHOT_END` is a stream marker). */
export type EventType =
  | "CREATED"
  | "DELIVERED"
  | "ANSWERED"
  | "APPROVED"
  | "REJECTED"
  | "CANCELLED"
  | "CONTEXT_CONFIRMED"
  | "CONTEXT_CHANGED"
  | "FALLBACK_FIRED"
  | "EXPIRED"
  | "SNAPSHOT_END"
  | "ESCALATED";

/** The effective policy copied into a decision when it was asked. */
export interface DecisionPolicy {
  /** The policy glob that matched (empty for the default policy). */
  matchedKind: string;
  /** Time to live from creation in milliseconds; undefined: no expiry. */
  timeoutMs?: number;
  /** `expire`, `approve` or `reject`. */
  onTimeout: string;
  /** The answer recorded when `onTimeout` is `approve` or `reject`. */
  timeoutAnswer?: JsonValue;
  /** How long a surface has to acknowledge before the fallback fires. */
  ackWindowMs?: number;
  /** Webhook names paged when nobody acknowledges in time. */
  fallback: string[];
  /** How fresh a context confirmation must be to complete a quorum of 2+. */
  contextMaxAgeMs?: number;
  /** Whether the asker may answer its own decision. */
  allowSelfApproval: boolean;
}

/** One operator's answer. */
export interface Answer {
  verdict: Verdict;
  /** The answer payload (valid against the decision's response schema). */
  answer?: JsonValue;
  rationale: string;
  /** The operator the answer counts for. */
  operator: string;
  /** The principal that sent it when it acted on behalf of `operator`. */
  submittedBy: string;
  answeredAt?: Date;
  /** Sequence of the ANSWERED event. */
  sequence: number;
}

/** One question for humans, as the server last reported it. */
export interface Decision {
  /** UUIDv7. */
  id: string;
  kind: string;
  /** What the human must judge. */
  input?: JsonValue;
  /** JSON Schema answers must satisfy; undefined when any answer goes. */
  responseSchema?: JsonValue;
  authorizedRoles: string[];
  surfaces: string[];
  requiredApprovals: number;
  /** Lowercase hex SHA-256 of the canonical context snapshot, or "". */
  contextHash: string;
  status: DecisionStatus;
  /** Answers so far, oldest first. */
  answers: Answer[];
  askedBy: string;
  createdAt?: Date;
  expiresAt?: Date;
  deliveredAt?: Date;
  deliveredVia: string;
  closedAt?: Date;
  /** Increments on every change. */
  version: number;
  /** Sequence of the latest event that changed it. */
  lastSequence: number;
  policy?: DecisionPolicy;
  /** When the asker last confirmed the context unchanged. */
  contextConfirmedAt?: Date;
  closeReason: string;
  closedBy: string;
  fallbackFired: boolean;
}

/** A change to a decision, as streams deliver it. */
export interface DecisionEvent {
  /**
   * Global position in the event log. For snapshot events the decision's
   * `lastSequence`; for `SNAPSHOT_END` the log position the snapshot shows.
   */
  sequence: number;
  type: EventType;
  /** The decision after the event; undefined on `SNAPSHOT_END`. */
  decision?: Decision;
  at?: Date;
  /** True for the open decisions sent before live events (and the marker). */
  snapshot: boolean;
}

/** A signed statement of how a closed decision ended. */
export interface Receipt {
  /** The receipt body as canonical JSON text. */
  body: string;
  /** Ed25519 signature over the UTF-8 bytes of `body`. */
  signature: Uint8Array;
  keyId: string;
}

/** Whether a status is terminal (anything but `OPEN`). */
export function isClosed(d: Pick<Decision, "status">): boolean {
  return d.status !== "OPEN";
}

/** The `witness` CLI's default `--server`, which {@link answerHint} leaves out. */
const DEFAULT_SERVER = "127.0.0.1:50051";

const BIDI = new Set(["\u200e", "\u200f", "\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069"]);

/** Escapes control characters and bidirectional overrides as the CLI does,
 * so a kind can neither forge a line nor recolour a terminal. */
function shown(s: string): string {
  let out = "";
  for (const c of s) {
    const n = c.codePointAt(0)!;
    if (c === "\n") out += "\\n";
    else if (c === "\r") out += "\\r";
    else if (c === "\t") out += "\\t";
    else if (n < 0x20 || (n >= 0x7f && n < 0xa0)) out += `\\x${n.toString(16).padStart(2, "0")}`;
    else if (BIDI.has(c)) out += `\\u{${n.toString(16)}}`;
    else out += c;
  }
  return out;
}

/** Options of {@link answerHint}. */
export interface AnswerHintOptions {
  /** The server (`HOST:PORT` or a URL such as the client's `baseUrl`); adds `--server` unless it is `127.0.0.1:50051`. */
  server?: string;
  /** Show `--token TOKEN` instead of the dev-mode `--as NAME --roles ROLE`. */
  token?: boolean;
}

/**
 * How a human answers `d` with the `witness` CLI: the two lines
 * `witness ask --wait` prints while it waits, e.g.
 *
 * ```text
 * waiting for a human to decide deploy.production (decision ID); answer it with:
 *   witness answer ID approve --rationale "..." --as NAME --roles sre
 * ```
 *
 * Print it from `ask()`'s `onCreated`: `onCreated: (d) => console.log(answerHint(d))`.
 */
export function answerHint(d: Pick<Decision, "id" | "kind" | "authorizedRoles">, options: AnswerHintOptions = {}): string {
  let where = "";
  if (options.server) {
    const bare = options.server.replace(/^http:\/\//, "").replace(/\/+$/, "");
    if (bare !== DEFAULT_SERVER) where = ` --server ${shown(options.server.replace(/\/+$/, ""))}`;
  }
  const who = options.token ? " --token TOKEN" : ` --as NAME --roles ${shown(d.authorizedRoles[0] ?? "ROLE")}`;
  const id = shown(d.id);
  return (
    `waiting for a human to decide ${shown(d.kind)} (decision ${id}); answer it with:\n` +
    `  witness answer ${id} approve --rationale "..."${who}${where}`
  );
}

const STATUS_NAMES: Record<number, DecisionStatus> = {
  [pb.Status.OPEN]: "OPEN",
  [pb.Status.APPROVED]: "APPROVED",
  [pb.Status.REJECTED]: "REJECTED",
  [pb.Status.CANCELLED]: "CANCELLED",
  [pb.Status.EXPIRED]: "EXPIRED",
  [pb.Status.CONTEXT_CHANGED]: "CONTEXT_CHANGED",
};

/** Converts a status name to the proto enum. */
export function statusToProto(s: DecisionStatus): pb.Status {
  const found = Object.entries(STATUS_NAMES).find(([, name]) => name === s);
  if (!found) throw new TypeError(`unknown status ${JSON.stringify(s)}`);
  return Number(found[0]) as pb.Status;
}

function statusName(s: pb.Status): DecisionStatus {
  const name = STATUS_NAMES[s];
  if (!name) throw new TypeError(`server sent unknown status ${s}`);
  return name;
}

/** Converts a plain JSON value to `google.protobuf.Value` (undefined stays unset). */
export function jsonToValue(v: JsonValue | undefined): Value | undefined {
  if (v === undefined) return undefined;
  return fromJson(ValueSchema, v);
}

/** Converts `google.protobuf.Value` to a plain JSON value (unset: undefined). */
export function valueToJson(v: Value | undefined): JsonValue | undefined {
  if (v === undefined) return undefined;
  return toJson(ValueSchema, v);
}

function date(t: Timestamp | undefined): Date | undefined {
  return t ? timestampDate(t) : undefined;
}

function ms(d: Duration | undefined): number | undefined {
  return d ? durationMs(d) : undefined;
}

function verdictName(v: pb.Verdict): Verdict {
  return v === pb.Verdict.REJECT ? "reject" : "approve";
}

/** Converts a proto `Decision`. */
export function decisionFromProto(d: pb.Decision): Decision {
  return {
    id: d.id,
    kind: d.kind,
    input: valueToJson(d.input),
    responseSchema: valueToJson(d.responseSchema),
    authorizedRoles: [...d.authorizedRoles],
    surfaces: [...d.surfaces],
    requiredApprovals: d.requiredApprovals,
    contextHash: d.contextHash,
    status: statusName(d.status),
    answers: d.answers.map((a) => ({
      verdict: verdictName(a.verdict),
      answer: valueToJson(a.answer),
      rationale: a.rationale,
      operator: a.operator,
      submittedBy: a.submittedBy,
      answeredAt: date(a.answeredAt),
      sequence: Number(a.sequence),
    })),
    askedBy: d.askedBy,
    createdAt: date(d.createdAt),
    expiresAt: date(d.expiresAt),
    deliveredAt: date(d.deliveredAt),
    deliveredVia: d.deliveredVia,
    closedAt: date(d.closedAt),
    version: Number(d.version),
    lastSequence: Number(d.lastSequence),
    policy: d.policy
      ? {
          matchedKind: d.policy.matchedKind,
          timeoutMs: ms(d.policy.timeout),
          onTimeout: d.policy.onTimeout,
          timeoutAnswer: valueToJson(d.policy.timeoutAnswer),
          ackWindowMs: ms(d.policy.ackWindow),
          fallback: [...d.policy.fallback],
          contextMaxAgeMs: ms(d.policy.contextMaxAge),
          allowSelfApproval: d.policy.allowSelfApproval,
        }
      : undefined,
    contextConfirmedAt: date(d.contextConfirmedAt),
    closeReason: d.closeReason,
    closedBy: d.closedBy,
    fallbackFired: d.fallbackFired,
  };
}

/** Converts a proto `DecisionEvent`. */
export function eventFromProto(e: pb.DecisionEvent): DecisionEvent {
  const type = pb.EventType[e.type] as EventType | undefined;
  if (type === undefined || e.type === pb.EventType.UNSPECIFIED) {
    throw new TypeError(`server sent unknown event type ${e.type}`);
  }
  return {
    sequence: Number(e.sequence),
    type,
    decision: e.decision ? decisionFromProto(e.decision) : undefined,
    at: date(e.at),
    snapshot: e.snapshot,
  };
}

/** Converts an answer outcome. */
export function outcomeFromProto(o: pb.AnswerOutcome): AnswerOutcome {
  switch (o) {
    case pb.AnswerOutcome.AWAITING_APPROVALS:
      return "AWAITING_APPROVALS";
    case pb.AnswerOutcome.CLOSED:
      return "CLOSED";
    case pb.AnswerOutcome.CONTEXT_CHANGED:
      return "CONTEXT_CHANGED";
    default:
      throw new TypeError(`server sent unknown answer outcome ${o}`);
  }
}
