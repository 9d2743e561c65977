/**
 * A gRPC listener: ext_authz v3 Authorization and grpc.health.v1.Health on one port, served on
 * node:http2 directly. serve.ts starts one for `server.grpcAddress` and one per `server.listeners`
 * entry, each with its own handler (a directional listener's handler has its direction bound in),
 * and sets them all SERVING or NOT_SERVING together: SERVING only when the sidecar can decide,
 * NOT_SERVING while draining.
 *
 * Why not grpc-js's server: on this listener it was half the cost of a Check. Measured through
 * Envoy on the bench's pinned core, a server answering OK without deciding spent 128 µs of CPU per
 * request on grpc-js and 64 µs on node:http2 alone (the Go floor: 55 µs), the difference being
 * grpc-js's per-call machinery: call and metadata objects, interceptor chains, status handling.
 * The ext_authz listener needs none of it: a unary call with one uncompressed message in each
 * direction (grpc-wire.ts) and the health service (health-service.ts). grpc-js stays for every
 * call the sidecar makes (SpiceDB, OTLP).
 */
import { constants, createServer as createHttp2Server } from 'node:http2';
import type { IncomingHttpHeaders, ServerHttp2Session, ServerHttp2Stream } from 'node:http2';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import type { CheckHandler } from './authorization-service.js';
import { parseListenAddress } from '../base/listen-address.js';
import { GrpcStatus, RequestBody, answerMessage, answerStatus, isGrpcProtoContentType } from './grpc-wire.js';
import type { BodyRefusal } from './grpc-wire.js';
import { createCheckExchange } from './check-exchange.js';
import { HEALTH_CHECK_PATH, HEALTH_WATCH_PATH, HealthService } from './health-service.js';
import { ListenerConnections } from './listener-connections.js';
import type { ConnectionRefusal, ListenerConnection } from './listener-connections.js';
import { ReceiveDeadlines } from './listener-deadlines.js';
import { DEFAULT_LISTENER_LIMITS } from './listener-limits.js';
import type { ListenerLimits } from './listener-limits.js';
import { CALL_STATE_BYTES, RequestMemory } from './listener-memory.js';

const CHECK_PATH = '/envoy.service.auth.v3.Authorization/Check';

/** Why the listener refused a connection or a call for one of its limits (the values of the refusals metric). */
export type ListenerRefusal = ConnectionRefusal | 'connection_limit' | 'request_timeout' | 'message_too_large' | 'request_memory';

export interface ListenerOptions {
  readonly limits: ListenerLimits;
  /** Shared by every listener of the process: `limits.maxRequestMemoryBytes` bounds them together. */
  readonly memory: RequestMemory;
  readonly onRefusal: (cause: ListenerRefusal) => void;
}

/** Options for every gRPC listener of one process, sharing one request memory. */
export function listenerOptions(limits: ListenerLimits, onRefusal: (cause: ListenerRefusal) => void = ignoreRefusal): ListenerOptions {
  return { limits, memory: new RequestMemory(limits.maxRequestMemoryBytes), onRefusal };
}

export interface GrpcListener {
  /** The bound port (useful when the configured port is 0). */
  readonly port: number;
  setServing(serving: boolean): void;
  /** Stops accepting connections and calls, lets calls in flight answer, then closes what is left after `graceMs`. */
  shutdown(graceMs: number): Promise<void>;
}

function ignoreError(): void {
  // A stream or session reset by the peer: nothing to answer, and nothing else holds it.
}

function ignoreRefusal(): void {
  // A listener started without metrics (tests, the bench's floor).
}

export async function startGrpcListener(address: string, check: CheckHandler, options: ListenerOptions = listenerOptions(DEFAULT_LISTENER_LIMITS)): Promise<GrpcListener> {
  const { limits, memory, onRefusal } = options;
  const exchange = createCheckExchange(check);
  const health = new HealthService();
  const deadlineReason = `the request message did not arrive within ${limits.requestTimeoutMs} ms`;
  const deadlines = new ReceiveDeadlines(limits.requestTimeoutMs, (stream) => {
    onRefusal('request_timeout');
    answerStatus(stream, GrpcStatus.DEADLINE_EXCEEDED, deadlineReason);
    // RST_STREAM NO_ERROR after the answer: stop sending, the call is over.
    stream.close(constants.NGHTTP2_NO_ERROR);
  });

  const answerCheck = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, message: Buffer): void => {
    exchange(
      message,
      headers,
      (framed) => {
        // Envoy gave up on this Check (its timeout) or the connection went: nobody to tell.
        if (stream.destroyed || stream.closed) return;
        answerMessage(stream, framed);
      },
      (status, reason) => answerStatus(stream, status, reason),
    );
  };

  const refuseBody = (stream: ServerHttp2Stream, refusal: BodyRefusal): void => {
    deadlines.stop(stream);
    if (refusal.kind === 'memory') {
      onRefusal('request_memory');
      stream.close(constants.NGHTTP2_REFUSED_STREAM);
      return;
    }
    if (refusal.tooLarge) onRefusal('message_too_large');
    answerStatus(stream, refusal.status, refusal.reason);
    stream.close(constants.NGHTTP2_NO_ERROR);
  };

  const onStream = (connection: ListenerConnection, stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void => {
    stream.on('error', ignoreError);
    // Past the request memory, a new call is refused before anything is read: REFUSED_STREAM
    // tells the client (Envoy retries it, envoy/envoy.yaml) that nothing of it was processed.
    if (!memory.tryReserve(CALL_STATE_BYTES)) {
      onRefusal('request_memory');
      stream.close(constants.NGHTTP2_REFUSED_STREAM);
      return;
    }
    connection.callOpened();
    const body = new RequestBody(limits.maxMessageBytes, memory);
    stream.once('close', () => {
      connection.callClosed();
      deadlines.stop(stream);
      body.release();
      memory.release(CALL_STATE_BYTES);
    });
    const path = headers[constants.HTTP2_HEADER_PATH];
    const contentType = headers[constants.HTTP2_HEADER_CONTENT_TYPE];
    if (headers[constants.HTTP2_HEADER_METHOD] !== 'POST' || typeof contentType !== 'string' || !isGrpcProtoContentType(contentType)) {
      // Not a gRPC call with protobuf messages (the protocol's answer to a wrong content type is HTTP 415).
      stream.respond({ [constants.HTTP2_HEADER_STATUS]: 415 }, { endStream: true });
      return;
    }
    if (path !== CHECK_PATH && path !== HEALTH_CHECK_PATH && path !== HEALTH_WATCH_PATH) {
      // The caller's path is not echoed: an answer never carries caller input.
      answerStatus(stream, GrpcStatus.UNIMPLEMENTED, 'unknown method');
      return;
    }
    deadlines.start(stream);
    stream.on('data', (chunk: Buffer) => {
      const refusal = body.add(chunk);
      if (refusal !== undefined) refuseBody(stream, refusal);
    });
    stream.once('end', () => {
      deadlines.stop(stream);
      if (body.refused || stream.headersSent || stream.destroyed) return;
      const message = body.end();
      if (!message.ok) answerStatus(stream, message.status, message.reason);
      else if (path === CHECK_PATH) answerCheck(stream, headers, message.message);
      else if (path === HEALTH_CHECK_PATH) health.check(stream, message.message);
      else health.watch(stream, message.message);
    });
  };

  let closing: (() => void) | undefined;
  const connections = new ListenerConnections(limits, onRefusal);
  const http2 = createHttp2Server({
    // Advertised, so Envoy opens another connection rather than send more; nghttp2 refuses any
    // call over it.
    settings: { maxConcurrentStreams: limits.maxConcurrentStreams },
    // Node's default (10 MB) was lifted to Number.MAX_SAFE_INTEGER, as grpc-js does, after a burst
    // of Checks on Envoy's one connection got ENHANCE_YOUR_CALM. With calls per connection
    // capped above, a bound holds again; the request messages themselves are not counted here but
    // in the request memory.
    maxSessionMemory: limits.maxConnectionMemoryMB,
  });
  http2.on('session', (session: ServerHttp2Session) => {
    session.on('error', ignoreError);
    // A connection accepted while shutting down gets GOAWAY at once.
    if (closing) {
      session.close();
      return;
    }
    // Watched until it closes: its handshake, idleness and liveness (listener-connections.ts).
    const connection = connections.add(session);
    session.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => onStream(connection, stream, headers));
    session.once('close', () => {
      if (connections.size === 0) closing?.();
    });
  });

  // The listening socket is ours, not the HTTP/2 server's, for two reasons. TCP_NODELAY, so a
  // small answer written while an earlier one is unacknowledged does not wait for Envoy's delayed
  // ACK (up to 40 ms). And in worker mode (workers/primary.ts) the workers share the primary's
  // socket: not `exclusive`, so node:cluster hands each accepted connection to one worker in turn.
  // Outside worker mode a second process on this port fails with EADDRINUSE.
  const listener = createServer({ noDelay: true }, (socket) => http2.emit('connection', socket));
  // Past it, node:net closes each new connection at once.
  listener.maxConnections = limits.maxConnections;
  listener.on('drop', () => onRefusal('connection_limit'));
  const { host, port: requested } = parseListenAddress(address);
  await new Promise<void>((resolve, reject) => {
    listener.once('error', reject);
    listener.listen({ host, port: requested, exclusive: false }, () => {
      listener.off('error', reject);
      resolve();
    });
  });
  const port = (listener.address() as AddressInfo).port;

  return {
    port,
    setServing(serving) {
      health.setServing(serving);
    },
    shutdown(graceMs) {
      listener.close();
      return new Promise<void>((resolve) => {
        const force = setTimeout(() => {
          for (const session of connections.sessions()) session.destroy();
          resolve();
        }, graceMs);
        force.unref();
        closing = () => {
          clearTimeout(force);
          resolve();
        };
        health.endWatches();
        // GOAWAY: no new calls; each connection closes once its calls in flight have answered.
        for (const session of connections.sessions()) session.close();
        if (connections.size === 0) closing();
      });
    },
  };
}
