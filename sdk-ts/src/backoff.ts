/**
 * Retry timing shared by unary retries and stream reconnects.
 *
 * @module
 */

/** How the client retries and reconnects. */
export interface RetryOptions {
  /**
   * Attempts for a unary call that fails with UNAVAILABLE (including the
   * first). Default 6.
   */
  maxAttempts?: number;
  /** First delay before a retry or reconnect. Default 100 ms. */
  initialDelayMs?: number;
  /** Cap on the delay between attempts. Default 3000 ms. */
  maxDelayMs?: number;
  /**
   * Consecutive failed reconnects after which a stream (`stream`, `watch`,
   * the wait in `ask`) gives up and rethrows. A delivered event resets the
   * count. Default: unlimited (a console survives any outage).
   */
  maxReconnects?: number;
}

export interface Backoff {
  maxAttempts: number;
  initialDelayMs: number;
  maxDelayMs: number;
  maxReconnects: number;
}

export function resolveRetry(o: RetryOptions | undefined): Backoff {
  return {
    maxAttempts: o?.maxAttempts ?? 6,
    initialDelayMs: o?.initialDelayMs ?? 100,
    maxDelayMs: o?.maxDelayMs ?? 3000,
    maxReconnects: o?.maxReconnects ?? Number.POSITIVE_INFINITY,
  };
}

/** The delay before retry number `attempt` (1-based), with full jitter on the upper half. */
export function delayFor(b: Backoff, attempt: number): number {
  const exp = Math.min(b.maxDelayMs, b.initialDelayMs * 2 ** Math.max(0, attempt - 1));
  return exp / 2 + Math.random() * (exp / 2);
}

/** The error an aborted signal stands for. */
export function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException("This operation was aborted", "AbortError");
}

/** Resolves after `ms`, or rejects with the signal's reason when it aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(abortReason(signal));
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortReason(signal!));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
