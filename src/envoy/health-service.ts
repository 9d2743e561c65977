/**
 * grpc.health.v1.Health on the sidecar's listener: Check (what Envoy's gRPC health checker and a
 * Kubernetes grpc probe call) and Watch (a stream of changes). The overall status ("") and the
 * ext_authz service report the same thing: SERVING only when the sidecar can decide. The messages
 * are encoded by protobufjs from grpc-health-check's own health.proto.
 */
import type { ServerHttp2Stream } from 'node:http2';
import * as protoLoader from '@grpc/proto-loader';
import { protoPath } from 'grpc-health-check';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { RESPONSE_HEADERS, answerMessage, answerStatus, frameMessage } from './grpc-wire.js';

export const HEALTH_CHECK_PATH = '/grpc.health.v1.Health/Check';
export const HEALTH_WATCH_PATH = '/grpc.health.v1.Health/Watch';
const AUTHORIZATION_SERVICE = 'envoy.service.auth.v3.Authorization';
const SERVICE_NAMES: ReadonlySet<string> = new Set(['', AUTHORIZATION_SERVICE]);

type ServingStatus = 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN';

const healthMethods = (() => {
  const definition = protoLoader.loadSync(protoPath, { keepCase: true, enums: String });
  const service = definition['grpc.health.v1.Health'] as protoLoader.ServiceDefinition;
  const check = service.Check as protoLoader.MethodDefinition<{ service?: string }, { status: ServingStatus }>;
  return { decodeRequest: check.requestDeserialize, encodeResponse: check.responseSerialize };
})();

/** Each status's answer, framed once. */
const FRAMED: Readonly<Record<ServingStatus, Buffer>> = {
  SERVING: frameMessage(healthMethods.encodeResponse({ status: 'SERVING' })),
  NOT_SERVING: frameMessage(healthMethods.encodeResponse({ status: 'NOT_SERVING' })),
  SERVICE_UNKNOWN: frameMessage(healthMethods.encodeResponse({ status: 'SERVICE_UNKNOWN' })),
};

/** The service a health request names, or undefined when its message does not decode. */
function requestedService(message: Buffer): string | undefined {
  try {
    return healthMethods.decodeRequest(message).service ?? '';
  } catch {
    return undefined;
  }
}

export class HealthService {
  #serving = false;
  /** Open Watch streams, each (unless it names a service not served here) told every change until it closes. */
  readonly #watchers = new Map<ServerHttp2Stream, { readonly known: boolean }>();

  setServing(serving: boolean): void {
    if (serving === this.#serving) return;
    this.#serving = serving;
    for (const [stream, { known }] of this.#watchers) if (known) stream.write(this.#framed());
  }

  #framed(): Buffer {
    return FRAMED[this.#serving ? 'SERVING' : 'NOT_SERVING'];
  }

  /**
   * Unary Check: the status, or NOT_FOUND for a service this listener does not serve. The answer
   * never repeats the service asked for: what a caller sends is not echoed back to it.
   */
  check(stream: ServerHttp2Stream, message: Buffer): void {
    const service = requestedService(message);
    if (service === undefined) answerStatus(stream, GrpcStatus.INTERNAL, 'the HealthCheckRequest does not decode');
    else if (!SERVICE_NAMES.has(service)) answerStatus(stream, GrpcStatus.NOT_FOUND, 'unknown service');
    else answerMessage(stream, this.#framed());
  }

  /** Server-streaming Watch: the status now, then every change; SERVICE_UNKNOWN for another service. */
  watch(stream: ServerHttp2Stream, message: Buffer): void {
    const service = requestedService(message);
    if (service === undefined) {
      answerStatus(stream, GrpcStatus.INTERNAL, 'the HealthCheckRequest does not decode');
      return;
    }
    stream.respond(RESPONSE_HEADERS, { waitForTrailers: true });
    // Another service gets SERVICE_UNKNOWN, and the stream stays open as the protocol asks.
    const known = SERVICE_NAMES.has(service);
    stream.write(known ? this.#framed() : FRAMED.SERVICE_UNKNOWN);
    this.#watchers.set(stream, { known });
    stream.once('close', () => this.#watchers.delete(stream));
  }

  /** Ends every Watch with UNAVAILABLE: the listener is shutting down. */
  endWatches(): void {
    for (const stream of this.#watchers.keys()) {
      if (stream.closed || stream.destroyed) continue;
      stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': String(GrpcStatus.UNAVAILABLE), 'grpc-message': 'shutting%20down' }));
      stream.end();
    }
    this.#watchers.clear();
  }
}
