/**
 * The deadline of each call whose message has not arrived yet: `limits.requestTimeoutMs` from its
 * HEADERS. Every call gets the same timeout, so deadlines fall in the order calls open: they are
 * kept in that order (a Map keeps insertion order) and one timer looks at the oldest ones only,
 * instead of a timer per call on the request path. A call is usually complete in the same read as
 * its HEADERS, and then costs one Map insert and one delete.
 */
import type { ServerHttp2Stream } from 'node:http2';

/** The longest time between two looks: how late past its deadline a call can be reset. */
const MAX_TICK_MS = 250;

export class ReceiveDeadlines {
  /** Calls waiting for their message, oldest first, with when they opened. */
  readonly #waiting = new Map<ServerHttp2Stream, number>();
  readonly #timeoutMs: number;
  readonly #tickMs: number;
  readonly #onExpired: (stream: ServerHttp2Stream) => void;
  #timer: NodeJS.Timeout | undefined;

  constructor(timeoutMs: number, onExpired: (stream: ServerHttp2Stream) => void) {
    this.#timeoutMs = timeoutMs;
    this.#tickMs = Math.min(MAX_TICK_MS, Math.max(25, Math.floor(timeoutMs / 4)));
    this.#onExpired = onExpired;
  }

  /** The call has opened: its message is due within the timeout. */
  start(stream: ServerHttp2Stream): void {
    this.#waiting.set(stream, performance.now());
    if (this.#timer === undefined) {
      this.#timer = setInterval(() => this.#tick(), this.#tickMs);
      this.#timer.unref();
    }
  }

  /** Its message has arrived, or it has closed. */
  stop(stream: ServerHttp2Stream): void {
    this.#waiting.delete(stream);
  }

  #tick(): void {
    if (this.#waiting.size === 0) {
      // Stopped only here, so a listener with one call at a time does not start a timer for each.
      clearInterval(this.#timer);
      this.#timer = undefined;
      return;
    }
    const openedBefore = performance.now() - this.#timeoutMs;
    for (const [stream, openedAt] of this.#waiting) {
      if (openedAt > openedBefore) break;
      this.#waiting.delete(stream);
      this.#onExpired(stream);
    }
  }
}
