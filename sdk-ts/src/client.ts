/**
 * {@link WitnessClient}: the async/await client for witness.
 *
 * @module
 */
import { randomUUID } from "node:crypto";
import type * as http2 from "node:http2";
import { Code, createClient, type CallOptions, type Interceptor, type Transport } from "@connectrpc/connect";
import { Http2SessionManager, createGrpcTransport } from "@connectrpc/connect-node";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { abortReason, delayFor, resolveRetry, sleep, type Backoff, type RetryOptions } from "./backoff.js";
import { ContextReporter, readContext, type ContextSource } from "./context.js";
import {
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  TokenProviderError,
  toWitnessError,
  type WitnessError,
} from "./errors.js";
import * as pb from "./gen/witness/v1/witness_pb.js";
import { streamEvents, watchEvents, type Rpc, type StreamOptions } from "./streams.js";
import {
  decisionFromProto,
  isClosed,
  jsonToValue,
  outcomeFromProto,
  statusToProto,
  type AnswerOutcome,
  type Decision,
  type DecisionEvent,
  type DecisionStatus,
  type JsonValue,
  type Receipt,
  type TokenProvider,
  type Verdict,
} from "./types.js";

/** How to reach and authenticate to a witness server. */
export interface WitnessClientOptions {
  /**
   * The server, e.g. `http://127.0.0.1:50051`; `https://` for TLS (the
   * system CAs, or `nodeOptions.ca`).
   */
  baseUrl: string;
  /**
   * Bearer token, sent as `authorization: Bearer TOKEN`; or a function
   * returning the current token (sync or async), called for every unary call
   * and every stream (re)start. If it throws, the call rejects with a
   * {@link TokenProviderError} and nothing is sent.
   */
  token?: TokenProvider;
  /** Dev mode only: the principal name (`x-witness-principal`). */
  principal?: string;
  /** Dev mode only: the principal's roles (`x-witness-roles`). */
  roles?: string[];
  /** Extra metadata sent with every call. */
  headers?: Record<string, string>;
  /** Retry and reconnect timing. */
  retry?: RetryOptions;
  /** Deadline of each unary call in ms (default 30000; 0: none). */
  callTimeoutMs?: number;
  /** How often `ask()` re-reports the context while waiting (default 5000 ms). */
  contextReportIntervalMs?: number;
  /** HTTP/2 keepalive PING interval for open streams (default 30000 ms). */
  pingIntervalMs?: number;
  /** Options for Node's `http2.connect()` (e.g. `ca`, `cert`, `key` for TLS). */
  nodeOptions?: http2.ClientSessionOptions | http2.SecureClientSessionOptions;
  /** A ready Connect transport; replaces everything above but the identity. */
  transport?: Transport;
}

/** Options of {@link WitnessClient.ask} and {@link WitnessClient.askNoWait}. */
export interface AskOptions {
  /** Roles whose holders may answer (required, non-empty). */
  authorizedRoles: string[];
  /** Where to deliver the decision, e.g. `["console"]`. */
  surfaces?: string[];
  /** JSON Schema (an object) answers must satisfy. */
  responseSchema?: JsonValue;
  /** Approvals needed (default: the policy's; never fewer than it). */
  requiredApprovals?: number;
  /**
   * The world the decision is about: a JSON snapshot, or a (possibly async)
   * function returning the current snapshot. Required for 2+ approvals.
   * With a function, `ask()` re-reads and reports it while waiting; a
   * different snapshot closes the decision `CONTEXT_CHANGED`.
   */
  context?: ContextSource;
  /** Time to live in ms (never longer than the policy's). */
  timeoutMs?: number;
  /** Idempotency key (default: a random UUID, reused for retries). */
  requestId?: string;
  /** Stops waiting (and retrying); the decision itself stays open. */
  signal?: AbortSignal;
  /**
   * Called once by `ask()` with the decision as the Ask returned it (open,
   * unless an idempotent retry found it closed already), before the wait:
   * e.g. `onCreated: (d) => console.log(answerHint(d))` prints its id and
   * the command that answers it. If it throws, `ask()` rejects with that
   * error without waiting (the decision stays open).
   */
  onCreated?: (decision: Decision) => void;
  /** The earlier name of {@link AskOptions.onCreated}; called right after it. */
  onAsked?: (decision: Decision) => void;
  /** Called with each event of the decision while `ask()` waits. */
  onEvent?: (event: DecisionEvent) => void;
  /** Called when reading or reporting the context fails (the wait goes on). */
  onContextError?: (err: unknown) => void;
}

/** The result of {@link WitnessClient.askNoWait}. */
export interface AskResult {
  decision: Decision;
  /** False when an idempotent retry returned the existing decision. */
  created: boolean;
}

/** Options of {@link WitnessClient.answer}. */
export interface AnswerOptions {
  /** Answer payload, checked against the decision's response schema. */
  answer?: JsonValue;
  /** The context as the operator sees it; a mismatch closes the decision. */
  currentContext?: JsonValue;
  /** The operator this answer is for (needs `can_act_for`). */
  onBehalfOf?: string;
  /** Idempotency key (default: a random UUID, reused for retries). */
  requestId?: string;
  signal?: AbortSignal;
}

/** The result of {@link WitnessClient.answer}. */
export interface AnswerResult {
  decision: Decision;
  outcome: AnswerOutcome;
}

/** Options of {@link WitnessClient.list}. */
export interface ListOptions {
  /** Only these statuses. */
  statuses?: DecisionStatus[];
  /** Only kinds matching one of these globs. */
  kinds?: string[];
  /** Decisions per page (server default 100, at most 1000). */
  pageSize?: number;
  signal?: AbortSignal;
}

/** One page of {@link WitnessClient.listPage}. */
export interface ListPage {
  decisions: Decision[];
  /** Pass to the next `listPage()`; empty on the last page. */
  nextPageToken: string;
}

function durationOf(ms: number | undefined) {
  if (ms === undefined) return undefined;
  if (!(ms > 0)) throw new TypeError("timeoutMs must be positive");
  return durationFromMs(ms);
}

/** The token to send now: the fixed one, or the provider's answer. */
async function currentToken(token: TokenProvider): Promise<string> {
  if (typeof token === "string") return token;
  let value: unknown;
  try {
    value = await token();
  } catch (e) {
    throw new TokenProviderError(`token provider failed: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  if (typeof value !== "string" || value === "") {
    throw new TokenProviderError(`token provider returned ${value === "" ? "an empty string" : typeof value}, not a token`);
  }
  return value;
}

function identity(o: WitnessClientOptions): Interceptor {
  return (next) => async (req) => {
    for (const [k, v] of Object.entries(o.headers ?? {})) req.header.set(k, v);
    if (o.token !== undefined) req.header.set("authorization", `Bearer ${await currentToken(o.token)}`);
    if (o.principal !== undefined) req.header.set("x-witness-principal", o.principal);
    if (o.roles !== undefined) req.header.set("x-witness-roles", o.roles.join(","));
    return next(req);
  };
}

/**
 * A client for one witness server. Create one per identity and reuse it:
 * calls share one HTTP/2 connection. Every method rejects with a
 * {@link WitnessError} subclass; unary calls are retried with back-off on
 * UNAVAILABLE (asks and answers carry a request id, so that is safe).
 *
 * @example
 * ```ts
 * const witness = new WitnessClient({ baseUrl: "http://127.0.0.1:50051", principal: "deployer" });
 * const d = await witness.ask("deploy.production", { service: "api" }, { authorizedRoles: ["sre"] });
 * if (d.status !== "APPROVED") throw new Error(`not approved: ${d.status}`);
 * ```
 */
export class WitnessClient {
  /** The generated Connect client, for anything this class does not cover. */
  readonly rpc: Rpc;
  readonly #retry: Backoff;
  readonly #callTimeoutMs: number | undefined;
  readonly #contextIntervalMs: number;
  readonly #session: Http2SessionManager | undefined;
  readonly #closed = new AbortController();

  constructor(options: WitnessClientOptions) {
    this.#retry = resolveRetry(options.retry);
    const timeout = options.callTimeoutMs ?? 30_000;
    this.#callTimeoutMs = timeout > 0 ? timeout : undefined;
    this.#contextIntervalMs = options.contextReportIntervalMs ?? 5_000;
    let transport = options.transport;
    if (!transport) {
      const url = new URL(options.baseUrl);
      if (url.protocol !== "http:" && url.protocol !== "https:") {
        throw new TypeError(`baseUrl must be http:// or https://, got ${options.baseUrl}`);
      }
      this.#session = new Http2SessionManager(
        url,
        { pingIntervalMs: options.pingIntervalMs ?? 30_000 },
        options.nodeOptions,
      );
      transport = createGrpcTransport({
        baseUrl: options.baseUrl,
        sessionManager: this.#session,
        interceptors: [identity(options)],
      });
    }
    this.rpc = createClient(pb.WitnessService, transport);
  }

  /**
   * Ends every call and stream of this client (they reject with an
   * AbortError) and closes its HTTP/2 connection. The client cannot be
   * used afterwards.
   */
  close(): void {
    this.#closed.abort(new DOMException("WitnessClient closed", "AbortError"));
    this.#session?.abort();
  }

  /** The caller's signal combined with this client's closing. */
  #signal(signal: AbortSignal | undefined): AbortSignal {
    return signal ? AbortSignal.any([signal, this.#closed.signal]) : this.#closed.signal;
  }

  /** Runs a unary call, retrying UNAVAILABLE with back-off. */
  async #unary<T, R = never>(
    call: (o: CallOptions) => Promise<T>,
    signal?: AbortSignal,
    recover?: (err: WitnessError, attempt: number) => Promise<R | undefined>,
  ): Promise<T | R> {
    signal = this.#signal(signal);
    for (let attempt = 1; ; attempt++) {
      try {
        return await call({ signal, timeoutMs: this.#callTimeoutMs });
      } catch (e) {
        if (signal?.aborted) throw abortReason(signal);
        const err = toWitnessError(e);
        const recovered = recover ? await recover(err, attempt) : undefined;
        if (recovered !== undefined) return recovered;
        if (!err.retryable || attempt >= this.#retry.maxAttempts) throw err;
        await sleep(delayFor(this.#retry, attempt), signal);
      }
    }
  }

  /**
   * Asks a question and waits until it is closed: calls `Ask`, then follows
   * the decision with `WatchDecision` (re-watching after a lost connection
   * or a restart) and returns the closed decision, whatever its status. Check
   * `status === "APPROVED"` before acting.
   *
   * With `context`, the snapshot is sent with the ask and re-sent with
   * `ReportContext` after each decision event and every
   * `contextReportIntervalMs` while the decision is open, so a two-person
   * quorum completes without user code and a changed world closes the
   * decision `CONTEXT_CHANGED`.
   *
   * @param kind dotted name that selects the policy, e.g. `deploy.production`
   * @param input what the human must judge (any JSON)
   */
  async ask(kind: string, input: JsonValue, options: AskOptions): Promise<Decision> {
    const { decision } = await this.askNoWait(kind, input, options);
    options.onCreated?.(decision);
    options.onAsked?.(decision);
    if (isClosed(decision)) return decision;
    return this.waitClosed(decision.id, options);
  }

  /**
   * Asks a question and returns at once with the open decision (or, for an
   * idempotent retry, the existing one).
   */
  async askNoWait(kind: string, input: JsonValue, options: AskOptions): Promise<AskResult> {
    const context = options.context === undefined ? undefined : await readContext(options.context);
    const req = {
      requestId: options.requestId ?? randomUUID(),
      kind,
      input: jsonToValue(input),
      responseSchema: jsonToValue(options.responseSchema),
      authorizedRoles: options.authorizedRoles,
      surfaces: options.surfaces ?? [],
      requiredApprovals: options.requiredApprovals ?? 0,
      contextSnapshot: jsonToValue(context),
      timeout: durationOf(options.timeoutMs),
    };
    const res = await this.#unary((o) => this.rpc.ask(req, o), options.signal);
    if (!res.decision) throw new TypeError("server answered Ask without a decision");
    return { decision: decisionFromProto(res.decision), created: res.created };
  }

  /**
   * Waits until a decision closes and returns it; with `context`, reports
   * the context as {@link WitnessClient.ask} does (only the asker may).
   */
  async waitClosed(
    decisionId: string,
    options: Pick<AskOptions, "context" | "signal" | "onEvent" | "onContextError"> = {},
  ): Promise<Decision> {
    const source = options.context;
    const reports = new AbortController();
    const reporter =
      source === undefined
        ? undefined
        : new ContextReporter(
            async () => {
              const snapshot = await readContext(source);
              await this.reportContext(decisionId, snapshot, { signal: reports.signal });
            },
            (err) => {
              // A report racing the close is expected; anything else is news.
              if (!(err instanceof FailedPreconditionError)) options.onContextError?.(err);
            },
          );
    reporter?.start(this.#contextIntervalMs);
    try {
      for await (const ev of watchEvents(this.#deps(), decisionId, this.#signal(options.signal))) {
        options.onEvent?.(ev);
        const d = ev.decision;
        if (!d) continue;
        if (isClosed(d)) return d;
        // Our own confirmations need no answer; just-created needs none yet.
        if (ev.type !== "CONTEXT_CONFIRMED" && ev.type !== "CREATED") reporter?.trigger();
      }
      throw new TypeError("WatchDecision ended before the decision closed");
    } finally {
      reports.abort();
      await reporter?.stop();
    }
  }

  /**
   * Records an operator's verdict. A retry with the same `requestId`
   * returns the first result. The approval that completes a quorum of 2+
   * fails with {@link FailedPreconditionError} unless the asker re-confirmed
   * the context since the previous approval (or `currentContext` matches).
   */
  async answer(
    decisionId: string,
    verdict: Verdict,
    rationale: string,
    options: AnswerOptions = {},
  ): Promise<AnswerResult> {
    if (verdict !== "approve" && verdict !== "reject") {
      throw new TypeError(`verdict must be "approve" or "reject", got ${JSON.stringify(verdict)}`);
    }
    const req = {
      decisionId,
      requestId: options.requestId ?? randomUUID(),
      verdict: verdict === "approve" ? pb.Verdict.APPROVE : pb.Verdict.REJECT,
      answer: jsonToValue(options.answer),
      rationale,
      currentContext: jsonToValue(options.currentContext),
      onBehalfOf: options.onBehalfOf ?? "",
    };
    const res = await this.#unary((o) => this.rpc.answer(req, o), options.signal);
    if (!res.decision) throw new TypeError("server answered Answer without a decision");
    return { decision: decisionFromProto(res.decision), outcome: outcomeFromProto(res.outcome) };
  }

  /**
   * Tells witness that a human has seen the decision on `surface`.
   * `accepted` is false when the decision is already closed.
   */
  async ack(
    decisionId: string,
    surface: string,
    options: { signal?: AbortSignal } = {},
  ): Promise<{ accepted: boolean; decision: Decision }> {
    const res = await this.#unary(
      (o) => this.rpc.ackDelivery({ decisionId, surface }, o),
      options.signal,
    );
    if (!res.decision) throw new TypeError("server answered AckDelivery without a decision");
    return { accepted: res.accepted, decision: decisionFromProto(res.decision) };
  }

  /** Withdraws an open decision (status `CANCELLED`). */
  async cancel(
    decisionId: string,
    reason = "",
    options: { signal?: AbortSignal } = {},
  ): Promise<Decision> {
    const res = await this.#unary(
      (o) => this.rpc.cancel({ decisionId, reason }, o),
      options.signal,
      async (err, attempt) => {
        // A retry after a cancel whose response was lost finds it cancelled.
        if (attempt > 1 && err instanceof FailedPreconditionError) {
          const d = await this.get(decisionId, options);
          if (d.status === "CANCELLED") return d;
        }
        return undefined;
      },
    );
    if ("id" in res) return res;
    if (!res.decision) throw new TypeError("server answered Cancel without a decision");
    return decisionFromProto(res.decision);
  }

  /**
   * Reports the asker's current context. `matched: false` means the snapshot
   * differed and the decision closed `CONTEXT_CHANGED`.
   */
  async reportContext(
    decisionId: string,
    snapshot: JsonValue,
    options: { signal?: AbortSignal } = {},
  ): Promise<{ matched: boolean; decision: Decision }> {
    const req = { decisionId, contextSnapshot: jsonToValue(snapshot) };
    const res = await this.#unary((o) => this.rpc.reportContext(req, o), options.signal);
    if (!res.decision) throw new TypeError("server answered ReportContext without a decision");
    return { matched: res.matched, decision: decisionFromProto(res.decision) };
  }

  /** Reads one decision ({@link NotFoundError} when it is not visible to you). */
  async get(decisionId: string, options: { signal?: AbortSignal } = {}): Promise<Decision> {
    const res = await this.#unary((o) => this.rpc.getDecision({ decisionId }, o), options.signal);
    if (!res.decision) throw new TypeError("server answered GetDecision without a decision");
    return decisionFromProto(res.decision);
  }

  /** The signed receipt of a closed decision, when the server issues them. */
  async getReceipt(
    decisionId: string,
    options: { signal?: AbortSignal } = {},
  ): Promise<Receipt | undefined> {
    const res = await this.#unary((o) => this.rpc.getDecision({ decisionId }, o), options.signal);
    const r = res.receipt;
    return r ? { body: r.body, signature: r.signature, keyId: r.keyId } : undefined;
  }

  /** Reads one page of decisions (oldest first). */
  async listPage(options: ListOptions = {}, pageToken = ""): Promise<ListPage> {
    const req = {
      statuses: (options.statuses ?? []).map(statusToProto),
      kinds: options.kinds ?? [],
      pageSize: options.pageSize ?? 0,
      pageToken,
    };
    const res = await this.#unary((o) => this.rpc.listDecisions(req, o), options.signal);
    return { decisions: res.decisions.map(decisionFromProto), nextPageToken: res.nextPageToken };
  }

  /**
   * Every decision you may see, oldest first, fetching page after page.
   *
   * @example
   * ```ts
   * for await (const d of witness.list({ statuses: ["OPEN"] })) console.log(d.id, d.kind);
   * ```
   */
  async *list(options: ListOptions = {}): AsyncGenerator<Decision, void, undefined> {
    let token = "";
    do {
      const page = await this.listPage(options, token);
      yield* page.decisions;
      token = page.nextPageToken;
    } while (token !== "");
  }

  /**
   * Decision events for consoles and surfaces, as an endless async iterable
   * (end it with `break` or `signal`). Reconnects after UNAVAILABLE,
   * RESOURCE_EXHAUSTED or a lost connection, resuming after the last
   * delivered sequence: no event is lost and none is yielded twice. Store
   * the `sequence` of what you handled and pass it as `afterSequence` to
   * resume after your own restart.
   *
   * @example
   * ```ts
   * for await (const ev of witness.stream({ includeOpen: true, kinds: ["deploy.*"] })) {
   *   if (ev.type === "SNAPSHOT_END") console.log("initial list complete");
   *   else console.log(ev.sequence, ev.type, ev.decision?.id);
   * }
   * ```
   */
  stream(options: StreamOptions = {}): AsyncIterable<DecisionEvent> {
    return streamEvents(this.#deps(), { ...options, signal: this.#signal(options.signal) });
  }

  /**
   * Resolves with the first of the decisions `ids` to close (one already
   * closed counts), following all of them over ONE `StreamDecisions` stream
   * filtered here, client-side. The stream resumes after the last event
   * when it drops, so a decision closing during an outage is not missed.
   *
   * @example
   * ```ts
   * const first = await witness.waitAny([a.id, b.id, c.id]);
   * console.log(first.id, first.status);
   * ```
   */
  async waitAny(ids: readonly string[], options: { signal?: AbortSignal } = {}): Promise<Decision> {
    if (ids.length === 0) {
      throw new InvalidArgumentError(Code.InvalidArgument, "ids: name at least one decision");
    }
    const wanted = new Set(ids);
    const openSeen = new Set<string>();
    const controller = new AbortController();
    const outer = this.#signal(options.signal);
    const stop = () => controller.abort(outer.reason);
    outer.addEventListener("abort", stop, { once: true });
    try {
      for await (const ev of this.stream({ includeOpen: true, signal: controller.signal })) {
        if (ev.type === "SNAPSHOT_END") {
          // Not in the snapshot: closed before it, or not visible to us.
          for (const id of wanted) {
            if (openSeen.has(id)) continue;
            try {
              const d = await this.get(id, { signal: controller.signal });
              if (isClosed(d)) return d;
            } catch (err) {
              if (!(err instanceof NotFoundError)) throw err;
            }
          }
          continue;
        }
        const d = ev.decision;
        if (!d || !wanted.has(d.id)) continue;
        if (isClosed(d)) return d;
        if (ev.snapshot) openSeen.add(d.id);
      }
      throw new TypeError("the decision stream ended");
    } finally {
      outer.removeEventListener("abort", stop);
      controller.abort();
    }
  }

  /**
   * One decision's events: its current state first (`snapshot: true`), then
   * each change; ends after the terminal event. Re-watches after a lost
   * connection (yielding the current state if it changed meanwhile).
   */
  watch(decisionId: string, options: { signal?: AbortSignal } = {}): AsyncIterable<DecisionEvent> {
    return watchEvents(this.#deps(), decisionId, this.#signal(options.signal));
  }

  #deps() {
    return { rpc: this.rpc, retry: this.#retry };
  }
}
