/**
 * The listener's open connections, and the one timer that looks after them.
 *
 * Why a PING: when nghttp2 itself ends a connection (a header block that does not decode, a rapid
 * reset), it sends GOAWAY and stops reading, and node:http2 (20 to 24) neither emits an event nor
 * closes the socket. Not reading, it never learns that the peer has gone either, so the descriptor
 * would be held for good: 500 such connections held 500 descriptors. From outside, such a session
 * looks silent, and it cannot answer a PING (nghttp2 sends nothing more), so a connection that has
 * read nothing for a while is pinged, and one that has still read nothing when the answer is due
 * is destroyed. A live peer (Envoy, a gRPC client) answers at once; a peer that has vanished
 * without closing (a half-open TCP connection) is found the same way.
 *
 * Silence is measured on the socket (`bytesRead`, which counts what nghttp2 reads), not by
 * node:http2's session timeout, which is not re-armed by a PING's answer and would miss a session
 * that nghttp2 ends after its first quiet spell.
 */
import type { ServerHttp2Session } from 'node:http2';

/** How often the timer looks at every connection: the resolution of each timeout below. */
const TICK_MS = 250;
/** A connection that has read nothing for this long is pinged. */
const PING_AFTER_SILENCE_MS = 2_000;
/** A pinged connection that has read nothing this long after the PING is destroyed. */
const PING_ANSWER_MS = 2_000;

interface Watched {
  /** The socket's bytesRead when the timer last saw it grow. */
  bytesRead: number;
  /** When bytesRead last grew (or the connection opened). */
  heardAt: number;
  /** When the PING was sent that has not been answered yet. */
  pingedAt: number | undefined;
}

export class ListenerConnections {
  readonly #watched = new Map<ServerHttp2Session, Watched>();
  #timer: NodeJS.Timeout | undefined;

  get size(): number {
    return this.#watched.size;
  }

  sessions(): IterableIterator<ServerHttp2Session> {
    return this.#watched.keys();
  }

  /** Watches `session` until it closes. */
  add(session: ServerHttp2Session): void {
    this.#watched.set(session, { bytesRead: 0, heardAt: performance.now(), pingedAt: undefined });
    session.once('close', () => {
      this.#watched.delete(session);
      if (this.#watched.size === 0) this.#stop();
    });
    if (this.#timer === undefined) {
      this.#timer = setInterval(() => this.#tick(), TICK_MS);
      this.#timer.unref();
    }
  }

  #stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #tick(): void {
    const now = performance.now();
    let unanswered: ServerHttp2Session[] | undefined;
    for (const [session, watched] of this.#watched) {
      if (session.destroyed) continue;
      if (this.#heard(session, watched)) {
        watched.heardAt = now;
        watched.pingedAt = undefined;
      } else if (watched.pingedAt !== undefined) {
        if (now - watched.pingedAt >= PING_ANSWER_MS) (unanswered ??= []).push(session);
      } else if (now - watched.heardAt >= PING_AFTER_SILENCE_MS) {
        watched.pingedAt = now;
        ping(session);
      }
    }
    // Timers run before the event loop reads sockets: after a long pause (a GC, a busy machine)
    // an answer may be waiting unread. Look again once this turn's reads are done.
    if (unanswered) setImmediate(() => this.#destroyUnanswered(unanswered));
  }

  /** Whether the connection has read anything since the timer last looked. */
  #heard(session: ServerHttp2Session, watched: Watched): boolean {
    const bytesRead = session.socket.bytesRead;
    if (bytesRead === watched.bytesRead) return false;
    watched.bytesRead = bytesRead;
    return true;
  }

  #destroyUnanswered(sessions: readonly ServerHttp2Session[]): void {
    for (const session of sessions) {
      const watched = this.#watched.get(session);
      if (watched === undefined || session.destroyed) continue;
      if (this.#heard(session, watched)) {
        watched.heardAt = performance.now();
        watched.pingedAt = undefined;
      } else {
        session.destroy();
      }
    }
  }
}

function ignoreAnswer(): void {
  // The answer is seen as bytes read; a PING cancelled by the session closing needs nothing.
}

function ping(session: ServerHttp2Session): void {
  try {
    session.ping(ignoreAnswer);
  } catch {
    // A session closing as we ping: the next tick no longer sees it.
  }
}
