/**
 * The listener's open connections, and the one timer that looks after them: a connection that has
 * not sent its HTTP/2 preface and SETTINGS within `handshakeTimeoutMs` is closed; one that has had
 * no call open for `idleConnectionTimeoutMs` is closed gracefully with GOAWAY; one that has sent
 * nothing for `pingAfterSilenceMs` is pinged, and closed if it has still sent nothing
 * `pingTimeoutMs` later.
 *
 * Why a PING: when nghttp2 itself ends a connection (a header block that does not decode, a rapid
 * reset), it sends GOAWAY and stops reading, and node:http2 (20 to 24) neither emits an event nor
 * closes the socket. Not reading, it never learns that the peer has gone either, so the descriptor
 * would be held for good: 500 such connections held 500 descriptors. From outside, such a session
 * looks silent, and it cannot answer a PING (nghttp2 sends nothing more), so it is found that way.
 * A live peer (Envoy, a gRPC client) answers at once; a peer that has vanished without closing (a
 * half-open TCP connection) is found the same way.
 *
 * Silence is measured on the socket (`bytesRead`, which counts what nghttp2 reads), not by
 * node:http2's session timeout, which is not re-armed by a PING's answer and would miss a session
 * that nghttp2 ends after its first quiet spell. The calls' own bookkeeping is two counters, so
 * the request path pays no clock reads or timers for any of this.
 */
import { constants } from 'node:http2';
import type { ServerHttp2Session } from 'node:http2';
import type { ListenerLimits } from './listener-limits.js';

/** The limits this module enforces. */
type ConnectionLimits = Pick<ListenerLimits, 'handshakeTimeoutMs' | 'idleConnectionTimeoutMs' | 'pingAfterSilenceMs' | 'pingTimeoutMs'>;

/** Why a connection was closed against its will. */
export type ConnectionRefusal = 'handshake_timeout' | 'unresponsive';

/** The longest time between two looks at the connections: the resolution of each timeout. */
const MAX_TICK_MS = 250;

/** The largest stream id: a first GOAWAY with it says "no new calls soon" without refusing any in flight. */
const ANY_STREAM_ID = 2 ** 31 - 1;

/** One connection, as the timer sees it. */
export class ListenerConnection {
  /** Calls open now. */
  openCalls = 0;
  /** Calls opened since the connection opened (so a call opened and closed between two looks still counts). */
  callsOpened = 0;
  readonly session: ServerHttp2Session;
  readonly openedAt: number;
  handshaken = false;
  closing = false;
  /** The socket's bytesRead when the timer last saw it grow, and when that was. */
  bytesRead = 0;
  heardAt: number;
  /** When the unanswered PING was sent. */
  pingedAt: number | undefined;
  /** callsOpened when the timer last looked, and since when no call has been open. */
  callsSeen = 0;
  idleSince: number;

  constructor(session: ServerHttp2Session, now: number) {
    this.session = session;
    this.openedAt = now;
    this.heardAt = now;
    this.idleSince = now;
  }

  callOpened(): void {
    this.openCalls++;
    this.callsOpened++;
  }

  callClosed(): void {
    this.openCalls--;
  }

  /** Whether the connection has read anything since the timer last looked. */
  heard(): boolean {
    const bytesRead = this.session.socket.bytesRead;
    if (bytesRead === this.bytesRead) return false;
    this.bytesRead = bytesRead;
    return true;
  }
}

export class ListenerConnections {
  readonly #connections = new Map<ServerHttp2Session, ListenerConnection>();
  readonly #limits: ConnectionLimits;
  readonly #tickMs: number;
  readonly #onRefusal: (cause: ConnectionRefusal) => void;
  #timer: NodeJS.Timeout | undefined;

  constructor(limits: ConnectionLimits, onRefusal: (cause: ConnectionRefusal) => void) {
    this.#limits = limits;
    this.#onRefusal = onRefusal;
    const shortest = Math.min(limits.handshakeTimeoutMs, limits.idleConnectionTimeoutMs, limits.pingAfterSilenceMs, limits.pingTimeoutMs);
    this.#tickMs = Math.min(MAX_TICK_MS, Math.max(25, Math.floor(shortest / 4)));
  }

  get size(): number {
    return this.#connections.size;
  }

  sessions(): IterableIterator<ServerHttp2Session> {
    return this.#connections.keys();
  }

  /** Watches `session` until it closes. */
  add(session: ServerHttp2Session): ListenerConnection {
    const connection = new ListenerConnection(session, performance.now());
    this.#connections.set(session, connection);
    session.once('remoteSettings', () => (connection.handshaken = true));
    session.once('close', () => {
      this.#connections.delete(session);
      if (this.#connections.size === 0) this.#stop();
    });
    if (this.#timer === undefined) {
      this.#timer = setInterval(() => this.#tick(), this.#tickMs);
      this.#timer.unref();
    }
    return connection;
  }

  #stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #tick(): void {
    const now = performance.now();
    const limits = this.#limits;
    let unanswered: ListenerConnection[] | undefined;
    let notHandshaken: ListenerConnection[] | undefined;
    for (const connection of this.#connections.values()) {
      if (connection.session.destroyed) continue;
      if (!connection.handshaken) {
        if (now - connection.openedAt >= limits.handshakeTimeoutMs) (notHandshaken ??= []).push(connection);
        continue;
      }
      if (connection.heard()) {
        connection.heardAt = now;
        connection.pingedAt = undefined;
      } else if (connection.pingedAt !== undefined) {
        if (now - connection.pingedAt >= limits.pingTimeoutMs) (unanswered ??= []).push(connection);
      } else if (now - connection.heardAt >= limits.pingAfterSilenceMs) {
        connection.pingedAt = now;
        ping(connection.session);
      }
      if (connection.openCalls > 0 || connection.callsOpened !== connection.callsSeen) {
        connection.callsSeen = connection.callsOpened;
        connection.idleSince = now;
      } else if (!connection.closing && now - connection.idleSince >= limits.idleConnectionTimeoutMs) {
        closeGracefully(connection);
      }
    }
    // Timers run before the event loop reads sockets: after a long pause (a GC, a busy machine)
    // a preface or a PING's answer may be waiting unread. Look again once this turn's reads are done.
    if (unanswered || notHandshaken) setImmediate(() => this.#refuseLate(unanswered ?? [], notHandshaken ?? []));
  }

  #refuseLate(unanswered: readonly ListenerConnection[], notHandshaken: readonly ListenerConnection[]): void {
    for (const connection of notHandshaken) {
      if (!connection.session.destroyed && !connection.handshaken) this.#refuse(connection, 'handshake_timeout');
    }
    for (const connection of unanswered) {
      if (connection.session.destroyed) continue;
      if (connection.heard()) {
        connection.heardAt = performance.now();
        connection.pingedAt = undefined;
      } else {
        this.#refuse(connection, 'unresponsive');
      }
    }
  }

  #refuse(connection: ListenerConnection, cause: ConnectionRefusal): void {
    this.#onRefusal(cause);
    connection.session.destroy();
  }
}

function ignorePingAnswer(): void {
  // The answer is seen as bytes read; a PING cancelled by the session closing needs nothing.
}

function ping(session: ServerHttp2Session): void {
  try {
    session.ping(ignorePingAnswer);
  } catch {
    // A session closing as we ping: the next look no longer sees it.
  }
}

/**
 * GOAWAY in two steps, as gRPC servers close idle connections: the first names no last call, so a
 * call the client sent before reading it is still served; after a PING round trip no such call
 * can be on its way, and the second GOAWAY closes the connection once its calls have answered.
 */
function closeGracefully(connection: ListenerConnection): void {
  connection.closing = true;
  const { session } = connection;
  try {
    session.goaway(constants.NGHTTP2_NO_ERROR, ANY_STREAM_ID);
    session.ping(() => session.close());
  } catch {
    session.destroy();
  }
}
