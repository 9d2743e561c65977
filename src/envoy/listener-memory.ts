/**
 * The memory the gRPC listeners' open calls hold, all listeners of a process together, kept under
 * `limits.maxRequestMemoryBytes`. Each call reserves a fixed share for its state when it opens,
 * and its message's length once the length prefix has arrived, and gives both back when it
 * closes. A reservation that does not fit is refused, so the total never passes the limit, however
 * many connections and calls a caller opens; calls holding a reservation finish normally.
 */

/**
 * What one open call costs before its message: measured on Node 20 as ~6 KB of RSS for a call
 * with a few headers (node:http2's stream, nghttp2's, the header list), rounded up.
 */
export const CALL_STATE_BYTES = 8 * 1024;

export class RequestMemory {
  #held = 0;

  constructor(readonly limitBytes: number) {}

  /** Bytes reserved now. */
  get heldBytes(): number {
    return this.#held;
  }

  /** Reserves `bytes` if they fit under the limit; otherwise reserves nothing and says so. */
  tryReserve(bytes: number): boolean {
    if (this.#held + bytes > this.limitBytes) return false;
    this.#held += bytes;
    return true;
  }

  release(bytes: number): void {
    this.#held -= bytes;
  }
}
