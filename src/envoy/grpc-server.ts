/**
 * A gRPC listener: ext_authz v3 Authorization and grpc.health.v1.Health on one port. serve.ts
 * starts one for `server.grpcAddress` and one per `server.listeners` entry, each with its own
 * handler (a directional listener's handler has its direction bound in), and sets them all
 * SERVING or NOT_SERVING together: SERVING only when the sidecar can decide, NOT_SERVING while
 * draining.
 */
import * as grpc from '@grpc/grpc-js';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { HealthImplementation } from 'grpc-health-check';
import type { CheckHandler } from './authorization-service.js';
import { parseListenAddress } from '../listen-address.js';
import { envoyAuthProto } from './protos.js';
import { memoizeResponseSerializer } from './response-serializer.js';

const AUTHORIZATION_SERVICE = 'envoy.service.auth.v3.Authorization';
/** The overall status ("") and the ext_authz service report the same thing. */
const HEALTH_NAMES = ['', AUTHORIZATION_SERVICE] as const;

export interface GrpcListener {
  /** The bound port (useful when the configured port is 0). */
  readonly port: number;
  setServing(serving: boolean): void;
  /** Stops accepting new calls and waits for in-flight calls, then forces close after `graceMs`. */
  shutdown(graceMs: number): Promise<void>;
}

export async function startGrpcListener(address: string, check: CheckHandler): Promise<GrpcListener> {
  const server = new grpc.Server({
    // Envoy keeps one long-lived HTTP/2 connection per worker; let it ping.
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.http2.min_ping_interval_without_data_ms': 10_000,
    // Channelz keeps per-call counters and timestamps nobody reads here (no channelz service is
    // registered); the bench profile showed its handler on every Check.
    'grpc.enable_channelz': 0,
  });
  const service = envoyAuthProto().envoy.service.auth.v3.Authorization.service;
  // Identical answers (one caller's cached allow, a cached service token, a denial reason) are
  // encoded once: see response-serializer.ts.
  const checkMethod = { ...service.Check, responseSerialize: memoizeResponseSerializer(service.Check.responseSerialize) };
  server.addService({ ...service, Check: checkMethod }, { Check: check });
  const health = new HealthImplementation(Object.fromEntries(HEALTH_NAMES.map((name) => [name, 'NOT_SERVING'])));
  health.addToServer(server);

  // The listening socket is ours, not grpc-js's, for two reasons. TCP_NODELAY: grpc-js leaves
  // Nagle's algorithm on for server sockets, so a small response written while an earlier one is
  // unacknowledged waits for Envoy's delayed ACK (up to 40 ms). And no SO_REUSEPORT (grpc-js sets
  // it): a second process on this port must fail with EADDRINUSE, not silently take half the checks.
  // In worker mode (workers/primary.ts) the workers share the primary's socket instead: not
  // `exclusive`, so node:cluster hands each accepted connection to one worker in turn.
  const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  const listener = createServer({ noDelay: true }, (socket) => injector.injectConnection(socket));
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
      for (const name of HEALTH_NAMES) health.setStatus(name, serving ? 'SERVING' : 'NOT_SERVING');
    },
    shutdown(graceMs) {
      listener.close();
      return new Promise<void>((resolve) => {
        const force = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        force.unref();
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
    },
  };
}
