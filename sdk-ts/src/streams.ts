/**
 * Resumable server streams: `StreamDecisions` resumed by sequence and
 * `WatchDecision` re-watched, both reconnecting with back-off.
 *
 * @module
 */
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { abortReason, delayFor, sleep, type Backoff } from "./backoff.js";
import { toWitnessError, type WitnessError } from "./errors.js";
import * as pb from "./gen/witness/v1/witness_pb.js";
import { eventFromProto, isClosed, type DecisionEvent } from "./types.js";

/** The generated client for `witness.v1.WitnessService`. */
export type Rpc = Client<typeof pb.WitnessService>;

/** What a stream needs from the client. */
export interface StreamDeps {
  rpc: Rpc;
  retry: Backoff;
}

/** Filters and resume point of a `stream()` subscription. */
export interface StreamOptions {
  /**
   * Send the open decisions first (events with `snapshot: true`), then a
   * `SNAPSHOT_END` marker, then live events. Ignored when `afterSequence` is
   * set (a resume sends the log instead).
   */
  includeOpen?: boolean;
  /** Only decisions whose kind matches one of these globs. */
  kinds?: string[];
  /** Only decisions listing one of these surfaces. */
  surfaces?: string[];
  /**
   * Resume: every visible event with a larger sequence, then live events.
   * Pass the `sequence` of the last event you handled (or of `SNAPSHOT_END`);
   * 0 replays the log from the first event. A value beyond the server's log
   * head fails with OUT_OF_RANGE (the server never had those events).
   */
  afterSequence?: number;
  /** Ends the stream (the iterator rejects with the signal's reason). */
  signal?: AbortSignal;
  /**
   * Called with the error before each reconnect (UNAVAILABLE during a
   * restart, RESOURCE_EXHAUSTED for a consumer that fell behind, ...).
   */
  onReconnect?: (err: WitnessError) => void;
}

// Codes after which a stream is opened again. CANCELLED that we did not ask
// for is how a connection lost under a stream shows (e.g. a killed server).
const RECONNECT = new Set<number>([
  Code.Unavailable,
  Code.ResourceExhausted,
  Code.Canceled,
  Code.Unknown,
  Code.Aborted,
]);

/** Decides what a failed stream does; returns when it should reconnect. */
async function afterFailure(
  deps: StreamDeps,
  failure: unknown,
  failures: number,
  signal: AbortSignal | undefined,
  onReconnect: ((err: WitnessError) => void) | undefined,
): Promise<void> {
  if (signal?.aborted) throw abortReason(signal);
  const err = toWitnessError(
    failure ?? new ConnectError("stream ended before its last event", Code.Unavailable),
  );
  if (!RECONNECT.has(err.grpcCode) || failures > deps.retry.maxReconnects) throw err;
  onReconnect?.(err);
  await sleep(delayFor(deps.retry, failures), signal);
}

function linked(signal: AbortSignal | undefined): {
  controller: AbortController;
  signal: AbortSignal;
} {
  const controller = new AbortController();
  return {
    controller,
    signal: signal ? AbortSignal.any([signal, controller.signal]) : controller.signal,
  };
}

/**
 * Follows `StreamDecisions`, reconnecting after UNAVAILABLE,
 * RESOURCE_EXHAUSTED or a lost connection with `after_sequence` set to the
 * last delivered position, so no event is lost or yielded twice.
 *
 * A live-only subscription (no `includeOpen`, no `afterSequence`) is opened
 * with `include_open` and its snapshot dropped: the `SNAPSHOT_END` marker
 * gives the log position "now" (0 for an empty log, which `after_sequence`
 * can say since it became optional), which makes even the first reconnect
 * exact.
 */
export async function* streamEvents(
  deps: StreamDeps,
  opts: StreamOptions = {},
): AsyncGenerator<DecisionEvent, void, undefined> {
  const { signal } = opts;
  // The last log position delivered; undefined until one is known.
  let cursor: number | undefined = opts.afterSequence;
  if (cursor !== undefined && (!Number.isSafeInteger(cursor) || cursor < 0)) {
    throw new TypeError("afterSequence must be a non-negative integer");
  }
  const showSnapshot = opts.includeOpen === true && cursor === undefined;
  // Snapshot events yielded while no log position is known (`id@sequence`),
  // so that a snapshot sent again never repeats one.
  const yielded = new Set<string>();
  let markerYielded = false;
  let failures = 0;
  for (;;) {
    const call = linked(signal);
    const resuming = cursor !== undefined;
    const request =
      cursor !== undefined
        ? { afterSequence: BigInt(cursor), kinds: opts.kinds, surfaces: opts.surfaces }
        : { includeOpen: true, kinds: opts.kinds, surfaces: opts.surfaces };
    let inSnapshot = !resuming;
    let failure: unknown;
    try {
      for await (const res of deps.rpc.streamDecisions(request, { signal: call.signal })) {
        if (!res.event) continue;
        const ev = eventFromProto(res.event);
        failures = 0;
        if (ev.type === "SNAPSHOT_END") {
          inSnapshot = false;
          cursor = Math.max(cursor ?? 0, ev.sequence);
          if (showSnapshot && !markerYielded) {
            markerYielded = true;
            yield ev;
          }
          continue;
        }
        if (ev.snapshot) {
          if (!showSnapshot || !inSnapshot) continue;
          const key = `${ev.decision?.id}@${ev.sequence}`;
          if (yielded.has(key)) continue;
          yielded.add(key);
          yield ev;
          continue;
        }
        if (cursor !== undefined && ev.sequence <= cursor) continue;
        cursor = ev.sequence;
        yielded.clear();
        yield ev;
      }
      failure = undefined; // ended without a status: open it again
    } catch (err) {
      failure = err;
    } finally {
      call.controller.abort();
    }
    failures += 1;
    await afterFailure(deps, failure, failures, signal, opts.onReconnect);
  }
}

/**
 * Follows one decision with `WatchDecision` until it closes. After a
 * reconnect the current state is yielded (with `snapshot: true`) if it
 * changed meanwhile; an event is never yielded twice.
 */
export async function* watchEvents(
  deps: StreamDeps,
  decisionId: string,
  signal?: AbortSignal,
  onReconnect?: (err: WitnessError) => void,
): AsyncGenerator<DecisionEvent, void, undefined> {
  let last = -1;
  let failures = 0;
  for (;;) {
    const call = linked(signal);
    let failure: unknown;
    try {
      for await (const res of deps.rpc.watchDecision({ decisionId }, { signal: call.signal })) {
        if (!res.event) continue;
        const ev = eventFromProto(res.event);
        failures = 0;
        if (ev.sequence <= last) continue;
        last = ev.sequence;
        yield ev;
        if (ev.decision && isClosed(ev.decision)) return;
      }
      failure = undefined;
    } catch (err) {
      failure = err;
    } finally {
      call.controller.abort();
    }
    failures += 1;
    await afterFailure(deps, failure, failures, signal, onReconnect);
  }
}
