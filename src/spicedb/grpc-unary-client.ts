/**
 * Unary gRPC calls on node:http2 (grpc/doc/PROTOCOL-HTTP2.md), for the one call the sidecar makes
 * per uncached check: CheckBulkPermissions. grpc-js's client machinery (channel, subchannel and
 * call objects, metadata, interceptors, its status handling) was most of what that call cost the
 * sidecar, as its server side was for the listener (src/envoy/grpc-server.ts); this speaks only
 * what a unary call with one uncompressed message each way needs. Everything else the sidecar
 * asks SpiceDB (schema, Watch, writes) stays on @authzed/authzed-node.
 *
 * One HTTP/2 connection at a time, opened on first use:
 * - SpiceDB ends each connection after ~30 s with GOAWAY (`--grpc-max-conn-age`): calls in flight
 *   finish on it, the next call opens a new one; a call the server refused as it went away ends
 *   UNAVAILABLE (REFUSED_STREAM), which the caller retries.
 * - When the connection cannot be made (refused, TLS failure), calls fail UNAVAILABLE at once until
 *   the next attempt, 100 ms later, growing ×1.6 to at most 1 s: a reconnect per second at most
 *   while SpiceDB is down, and back within a second of it returning (grpc-js was configured so).
 * - When a call times out, the connection is pinged; if no answer comes within a second, it is
 *   presumed dead (a peer gone without closing it) and the next call opens another. Calls still on
 *   it end at their own deadlines. One still connecting when a call on it times out is dropped at
 *   once. (grpc-js, before, pinged every 5 minutes, so a peer gone silent held every check at its
 *   deadline for up to that long.)
 *
 * Every call carries its deadline as `grpc-timeout` and ends DEADLINE_EXCEEDED here at that
 * deadline, whatever the server does. The result is a gRPC status, never a throw.
 */
import { connect, constants } from 'node:http2';
import type { ClientHttp2Session, ClientHttp2Stream, IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2';
import { connect as connectTcp, isIP } from 'node:net';
import type { Socket } from 'node:net';
import { connect as connectTls } from 'node:tls';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { failure, success } from '../core/result.js';
import type { Failure, Result } from '../core/result.js';

export interface GrpcUnaryClientOptions {
  /** `host:port`; an IPv6 host in brackets. */
  readonly endpoint: string;
  /** false: plaintext; otherwise TLS, trusting `ca` (PEM) alone, or Node's default roots without it. */
  readonly tls: false | { readonly ca?: Buffer };
  /** Sent with every call (the preshared key as `authorization`). */
  readonly headers: Readonly<Record<string, string>>;
}

/** The answer's one message, or the gRPC status the call ended with and why. */
export type UnaryResult = Result<Buffer, GrpcStatus>;

const PREFIX_BYTES = 5;
/** grpc-js's default for the largest message a client receives. */
const MAX_RESPONSE_MESSAGE_BYTES = 4 * 1024 * 1024;
const FIRST_RECONNECT_DELAY_MS = 100;
const MAX_RECONNECT_DELAY_MS = 1000;
const RECONNECT_DELAY_GROWTH = 1.6;
/** How long a connection has to answer a ping after a call on it timed out. */
const PING_TIMEOUT_MS = 1000;

/** gRPC's mapping of an HTTP status that came without a grpc-status (PROTOCOL-HTTP2.md, http-grpc-status-mapping.md). */
function statusForHttp(httpStatus: number): GrpcStatus {
  switch (httpStatus) {
    case 400:
      return GrpcStatus.INTERNAL;
    case 401:
      return GrpcStatus.UNAUTHENTICATED;
    case 403:
      return GrpcStatus.PERMISSION_DENIED;
    case 404:
      return GrpcStatus.UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return GrpcStatus.UNAVAILABLE;
    default:
      return GrpcStatus.UNKNOWN;
  }
}

/** How grpc-js reads an RST_STREAM that ended a call before its status. */
function statusForReset(rstCode: number): Failure<GrpcStatus> {
  switch (rstCode) {
    case constants.NGHTTP2_REFUSED_STREAM:
      // Not processed (a GOAWAY raced the call): safe to send again.
      return failure(GrpcStatus.UNAVAILABLE, 'the call was refused by the server (REFUSED_STREAM)');
    case constants.NGHTTP2_NO_ERROR:
    case constants.NGHTTP2_CANCEL:
      // The connection closed under the call.
      return failure(GrpcStatus.UNAVAILABLE, 'the connection closed before the call was answered');
    case constants.NGHTTP2_ENHANCE_YOUR_CALM:
      return failure(GrpcStatus.RESOURCE_EXHAUSTED, 'the server reset the call (ENHANCE_YOUR_CALM)');
    case constants.NGHTTP2_INADEQUATE_SECURITY:
      return failure(GrpcStatus.PERMISSION_DENIED, 'the server reset the call (INADEQUATE_SECURITY)');
    default:
      return failure(GrpcStatus.INTERNAL, `the server reset the call (HTTP/2 error ${rstCode})`);
  }
}

function decodedMessage(raw: string | string[] | undefined): string {
  if (typeof raw !== 'string') return '';
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

/** A grpc-status header's code, or undefined when there is none. */
function statusIn(headers: IncomingHttpHeaders): number | undefined {
  const raw = headers['grpc-status'];
  if (typeof raw !== 'string') return undefined;
  const code = Number(raw);
  return Number.isInteger(code) && code >= 0 ? code : GrpcStatus.UNKNOWN;
}

/** `grpc-timeout` for `ms` milliseconds: at most 8 digits, so seconds past that. */
function timeoutHeader(ms: number): string {
  return ms < 100_000_000 ? `${ms}m` : `${Math.ceil(ms / 1000)}S`;
}

/** `message` with its prefix: not compressed, then its length. */
function framed(message: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(PREFIX_BYTES + message.length);
  frame[0] = 0;
  frame.writeUInt32BE(message.length, 1);
  frame.set(message, PREFIX_BYTES);
  return frame;
}

/** The one message of a unary answer's DATA, or why there is not exactly one. */
function unaryResponse(chunks: readonly Buffer[], bytes: number): UnaryResult {
  const data = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, bytes);
  if (data.length < PREFIX_BYTES) return failure(GrpcStatus.INTERNAL, data.length === 0 ? 'the answer held no message' : 'the answer held a truncated message');
  if (data[0] !== 0) return failure(GrpcStatus.INTERNAL, 'the answer was compressed although the call accepts identity only');
  const end = PREFIX_BYTES + data.readUInt32BE(1);
  if (data.length !== end) return failure(GrpcStatus.INTERNAL, data.length < end ? 'the answer held a truncated message' : 'the answer held more than one message');
  return success(data.subarray(PREFIX_BYTES));
}

/** A call in flight, ended by the deadline alarm once `deadline` (epoch ms) has come. */
interface Expiring {
  readonly deadline: number;
  expire(): void;
}

export class GrpcUnaryClient {
  readonly #origin: string;
  readonly #host: string;
  readonly #port: number;
  readonly #tls: false | { readonly ca?: Buffer };
  readonly #headers: Readonly<Record<string, string>>;
  #session: ClientHttp2Session | undefined;
  /** While connecting has just failed: no new attempt before this time, and why it failed. */
  #reconnectAt = 0;
  #reconnectDelayMs = 0;
  #connectFailure = '';
  /**
   * Calls not yet answered, and one alarm for the earliest deadline among them. Calls usually end
   * long before it, so it fires about once per deadline while calls keep coming. (A timer per
   * call, each of another duration, cost more than the rest of a call's bookkeeping: Node keeps a
   * list per duration; a periodic sweep cost CPU while calls waited on a slow SpiceDB.)
   */
  readonly #inFlight = new Set<Expiring>();
  #alarm: NodeJS.Timeout | undefined;
  #alarmAt = Number.POSITIVE_INFINITY;
  /** The connection being pinged after a timeout, if any. */
  #probing: ClientHttp2Session | undefined;
  #closed = false;

  constructor(options: GrpcUnaryClientOptions) {
    this.#origin = `${options.tls === false ? 'http' : 'https'}://${options.endpoint}`;
    const colon = options.endpoint.lastIndexOf(':');
    this.#host = options.endpoint.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
    this.#port = Number(options.endpoint.slice(colon + 1));
    this.#tls = options.tls;
    this.#headers = options.headers;
  }

  /**
   * Sends `request` (one encoded message) to `path`; answers with the one response message or the
   * call's status, at `deadline` (epoch ms) at the latest. `extraHeaders` go with this call only
   * (trace context).
   */
  call(path: string, request: Uint8Array, deadline: number, extraHeaders?: Readonly<Record<string, string>>): Promise<UnaryResult> {
    const remainingMs = Math.ceil(deadline - Date.now());
    if (remainingMs <= 0) return Promise.resolve(failure(GrpcStatus.DEADLINE_EXCEEDED, 'the deadline passed before the call was sent'));
    const session = this.#usableSession();
    if (typeof session === 'string') return Promise.resolve(failure(GrpcStatus.UNAVAILABLE, session));
    const headers: OutgoingHttpHeaders = {
      [constants.HTTP2_HEADER_METHOD]: 'POST',
      [constants.HTTP2_HEADER_PATH]: path,
      [constants.HTTP2_HEADER_CONTENT_TYPE]: 'application/grpc',
      [constants.HTTP2_HEADER_TE]: 'trailers',
      'grpc-timeout': timeoutHeader(remainingMs),
      'grpc-accept-encoding': 'identity',
      ...this.#headers,
      ...extraHeaders,
    };
    let stream: ClientHttp2Stream;
    try {
      stream = session.request(headers, { endStream: false });
    } catch (error) {
      // The connection began closing (GOAWAY) since it was picked: the next call opens another.
      this.#forget(session);
      return Promise.resolve(failure(GrpcStatus.UNAVAILABLE, `the connection is closing: ${(error as Error).message}`));
    }
    return new Promise((resolve) => {
      let settled = false;
      let status: GrpcStatus | undefined;
      let statusMessage = '';
      let streamError: Error | undefined;
      let httpStatus = 200;
      let contentTypeOk = true;
      const chunks: Buffer[] = [];
      let bytes = 0;
      const watched: Expiring = {
        deadline,
        expire: () => {
          settle(failure(GrpcStatus.DEADLINE_EXCEEDED, `no answer within ${remainingMs} ms`));
          stream.close(constants.NGHTTP2_CANCEL);
          this.#probe(session);
        },
      };
      const settle = (result: UnaryResult): void => {
        if (settled) return;
        settled = true;
        this.#unwatch(watched);
        resolve(result);
      };
      this.#watch(watched);
      stream.on('response', (responseHeaders: IncomingHttpHeaders) => {
        httpStatus = Number(responseHeaders[constants.HTTP2_HEADER_STATUS]);
        const contentType = responseHeaders[constants.HTTP2_HEADER_CONTENT_TYPE];
        contentTypeOk = typeof contentType === 'string' && contentType.startsWith('application/grpc');
        // Trailers-only: the status came with the headers.
        status = statusIn(responseHeaders);
        if (status !== undefined) statusMessage = decodedMessage(responseHeaders['grpc-message']);
      });
      stream.on('data', (chunk: Buffer) => {
        if (settled) return;
        bytes += chunk.length;
        if (bytes > PREFIX_BYTES + MAX_RESPONSE_MESSAGE_BYTES) {
          settle(failure(GrpcStatus.RESOURCE_EXHAUSTED, `the answer is over ${MAX_RESPONSE_MESSAGE_BYTES} bytes`));
          stream.close(constants.NGHTTP2_CANCEL);
          return;
        }
        chunks.push(chunk);
      });
      stream.on('trailers', (trailers: IncomingHttpHeaders) => {
        status = statusIn(trailers) ?? GrpcStatus.UNKNOWN;
        statusMessage = decodedMessage(trailers['grpc-message']);
      });
      stream.on('error', (error: Error) => {
        streamError = error;
      });
      stream.on('close', () => {
        if (settled) return;
        if (status === undefined) {
          if (streamError !== undefined) settle(failure(GrpcStatus.UNAVAILABLE, streamError.message));
          else if (httpStatus !== 200) settle(failure(statusForHttp(httpStatus), `HTTP ${httpStatus} without a gRPC status`));
          else settle(statusForReset(stream.rstCode ?? constants.NGHTTP2_NO_ERROR));
        } else if (status !== GrpcStatus.OK) settle(failure(status, statusMessage));
        else if (!contentTypeOk) settle(failure(GrpcStatus.UNKNOWN, 'the answer is not application/grpc'));
        else settle(unaryResponse(chunks, bytes));
      });
      stream.end(framed(request));
    });
  }

  #watch(call: Expiring): void {
    this.#inFlight.add(call);
    if (call.deadline < this.#alarmAt) this.#arm(call.deadline);
    // While no call is in flight the alarm does not keep the process alive.
    else this.#alarm?.ref();
  }

  #unwatch(call: Expiring): void {
    this.#inFlight.delete(call);
    if (this.#inFlight.size === 0) this.#alarm?.unref();
  }

  #arm(at: number): void {
    clearTimeout(this.#alarm);
    this.#alarmAt = at;
    this.#alarm = setTimeout(this.#onAlarm, Math.max(0, at - Date.now()));
  }

  /** Ends the calls whose deadline has come, and sets the alarm for the next. */
  readonly #onAlarm = (): void => {
    this.#alarm = undefined;
    this.#alarmAt = Number.POSITIVE_INFINITY;
    const now = Date.now();
    let next = Number.POSITIVE_INFINITY;
    for (const call of this.#inFlight) {
      if (call.deadline <= now) call.expire();
      else next = Math.min(next, call.deadline);
    }
    if (next !== Number.POSITIVE_INFINITY) this.#arm(next);
  };

  /** The open connection, a new one, or (while connecting has just failed) why there is none. */
  #usableSession(): ClientHttp2Session | string {
    if (this.#closed) return 'the client is closed';
    const current = this.#session;
    if (current !== undefined && !current.closed && !current.destroyed) return current;
    if (Date.now() < this.#reconnectAt) return `no connection to SpiceDB: ${this.#connectFailure}`;
    return this.#open();
  }

  /**
   * The connection's socket, with TCP_NODELAY (node:http2 leaves it off; grpc-js and the listener
   * set it): a call written while an earlier one's bytes are unacknowledged must not wait for the
   * server's delayed ACK. On loopback it made no difference measurable here; across a network it
   * can hold a call up to 40 ms. TLS as node:http2 would set it up: ALPN h2, SNI unless the host is
   * an IP address, the host verified against the certificate.
   */
  #socket(): Socket {
    const host = this.#host;
    const port = this.#port;
    const tls = this.#tls;
    const socket =
      tls === false
        ? connectTcp({ host, port })
        : connectTls({ host, port, ALPNProtocols: ['h2'], ...(isIP(host) === 0 ? { servername: host } : {}), ...(tls.ca === undefined ? {} : { ca: tls.ca }) });
    socket.setNoDelay(true);
    return socket;
  }

  #open(): ClientHttp2Session {
    const session = connect(this.#origin, { createConnection: () => this.#socket() });
    this.#session = session;
    let connected = false;
    session.once('connect', () => {
      connected = true;
      this.#reconnectDelayMs = 0;
      this.#reconnectAt = 0;
    });
    session.on('error', (error: Error) => {
      // Calls on it end with their streams' errors; a failed connect delays the next attempt.
      if (!connected) this.#connectFailed(error);
    });
    // Calls in flight finish on a connection going away; new ones need another.
    session.on('goaway', () => this.#forget(session));
    session.once('close', () => this.#forget(session));
    // An idle connection does not keep the process alive; a call's deadline timer does.
    session.unref();
    return session;
  }

  #connectFailed(error: Error): void {
    this.#reconnectDelayMs = Math.min(MAX_RECONNECT_DELAY_MS, this.#reconnectDelayMs === 0 ? FIRST_RECONNECT_DELAY_MS : this.#reconnectDelayMs * RECONNECT_DELAY_GROWTH);
    this.#reconnectAt = Date.now() + this.#reconnectDelayMs;
    this.#connectFailure = error.message;
  }

  #forget(session: ClientHttp2Session): void {
    if (this.#session === session) this.#session = undefined;
  }

  /**
   * After a call timed out on `session`: unless it answers a ping within a second, retire it. One
   * still connecting after a whole deadline is given up at once (its calls are retried on the next).
   */
  #probe(session: ClientHttp2Session): void {
    if (this.#probing === session || this.#session !== session || session.closed || session.destroyed) return;
    if (session.connecting) {
      this.#forget(session);
      session.destroy();
      return;
    }
    this.#probing = session;
    let concluded = false;
    const conclude = (alive: boolean): void => {
      if (concluded) return;
      concluded = true;
      clearTimeout(timer);
      if (this.#probing === session) this.#probing = undefined;
      if (alive) return;
      this.#forget(session);
      // Calls still on it end at their own deadlines; then it goes.
      if (!session.closed) session.close();
    };
    const timer = setTimeout(() => conclude(false), PING_TIMEOUT_MS);
    timer.unref();
    // false: pings already outstanding, so nothing to learn from this one.
    if (!session.ping((error) => conclude(error === null))) conclude(true);
  }

  /** Ends every call in flight and the connection. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#alarm);
    this.#alarm = undefined;
    const session = this.#session;
    this.#session = undefined;
    session?.destroy();
  }
}
