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
import type { CheckRequestView } from './check-request-decoder.js';
import { parseListenAddress } from '../listen-address.js';
import { GrpcStatus, RequestBody, answerMessage, answerStatus, frameMessage, isGrpcProtoContentType, unaryMessage } from './grpc-wire.js';
import { decodeCheckRequest } from './check-request-decoder.js';
import { HEALTH_CHECK_PATH, HEALTH_WATCH_PATH, HealthService } from './health-service.js';
import { ListenerConnections } from './listener-connections.js';
import { envoyAuthProto } from './protos.js';
import { memoizeResponseSerializer } from './response-serializer.js';

const CHECK_PATH = '/envoy.service.auth.v3.Authorization/Check';

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

export async function startGrpcListener(address: string, check: CheckHandler): Promise<GrpcListener> {
  const method = envoyAuthProto().envoy.service.auth.v3.Authorization.service.Check;
  // Identical answers (one caller's cached allow, a cached service token, a denial reason) are
  // encoded and framed once: see response-serializer.ts.
  const encodeCheckResponse = memoizeResponseSerializer((response) => frameMessage(method.responseSerialize(response)));
  const health = new HealthService();

  const answerCheck = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, message: Buffer): void => {
    let request: CheckRequestView;
    try {
      request = decodeCheckRequest(message);
    } catch {
      answerStatus(stream, GrpcStatus.INTERNAL, 'the CheckRequest does not decode');
      return;
    }
    check(request, headers, (response) => {
      // Envoy gave up on this Check (its timeout) or the connection went: nobody to tell.
      if (stream.destroyed || stream.closed) return;
      answerMessage(stream, encodeCheckResponse(response));
    });
  };

  const onStream = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void => {
    stream.on('error', ignoreError);
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
    const body = new RequestBody();
    stream.on('data', (chunk: Buffer) => {
      if (!body.add(chunk)) answerStatus(stream, GrpcStatus.RESOURCE_EXHAUSTED, 'request message too large');
    });
    stream.once('end', () => {
      if (stream.headersSent) return;
      const message = unaryMessage(body.whole());
      if (!message.ok) answerStatus(stream, message.status, message.reason);
      else if (path === CHECK_PATH) answerCheck(stream, headers, message.message);
      else if (path === HEALTH_CHECK_PATH) health.check(stream, message.message);
      else health.watch(stream, message.message);
    });
  };

  const connections = new ListenerConnections();
  let closing: (() => void) | undefined;
  const http2 = createHttp2Server({
    // Node's default (10 MB of buffered frames per connection) answers a burst of Checks on
    // Envoy's one connection with ENHANCE_YOUR_CALM, failing them all; grpc-js lifts it as well.
    maxSessionMemory: Number.MAX_SAFE_INTEGER,
  });
  http2.on('stream', onStream);
  http2.on('session', (session: ServerHttp2Session) => {
    session.on('error', ignoreError);
    // A connection accepted while shutting down gets GOAWAY at once.
    if (closing) {
      session.close();
      return;
    }
    // Watched until it closes: one nghttp2 has ended is found and destroyed (listener-connections.ts).
    connections.add(session);
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
