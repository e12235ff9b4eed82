/**
 * The asker's side of the two-person context window: while a decision is
 * open, `ask()` re-sends the current context snapshot after each decision
 * event and periodically, so the approval that completes a quorum finds a
 * fresh confirmation, and a changed world closes the decision at once.
 *
 * @module
 */
import type { JsonValue } from "./types.js";

/**
 * The context a decision is about: a JSON snapshot, or a function (possibly
 * async) that returns the snapshot as it is now.
 */
export type ContextSource = JsonValue | (() => JsonValue | Promise<JsonValue>);

/** Calls a context source. */
export async function readContext(source: ContextSource): Promise<JsonValue> {
  return typeof source === "function" ? await source() : source;
}

/**
 * Runs `report` on demand and every `intervalMs`, never two at once: a
 * request that arrives while a report is running makes exactly one more run
 * after it, so the last report always reflects the latest trigger.
 */
export class ContextReporter {
  readonly #report: () => Promise<void>;
  readonly #onError: (err: unknown) => void;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #pending = false;
  #stopped = false;

  constructor(report: () => Promise<void>, onError: (err: unknown) => void) {
    this.#report = report;
    this.#onError = onError;
  }

  /** Starts the periodic reports. */
  start(intervalMs: number): void {
    if (intervalMs > 0 && Number.isFinite(intervalMs)) {
      this.#timer = setInterval(() => this.trigger(), intervalMs);
      this.#timer.unref();
    }
  }

  /** Asks for a report as soon as possible. */
  trigger(): void {
    if (this.#stopped) return;
    if (this.#running) {
      this.#pending = true;
      return;
    }
    this.#running = this.#run();
  }

  async #run(): Promise<void> {
    try {
      do {
        this.#pending = false;
        try {
          await this.#report();
        } catch (err) {
          if (!this.#stopped) this.#onError(err);
        }
      } while (this.#pending && !this.#stopped);
    } finally {
      this.#running = undefined;
    }
  }

  /** Stops reporting; resolves once a report in flight has finished. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    await this.#running;
  }
}
