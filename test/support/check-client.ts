/**
 * Calls a running sidecar the way Envoy does: envoy.service.auth.v3.Authorization/Check, and
 * grpc.health.v1.Health/Check, over gRPC on loopback.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { protoPath as healthProtoPath } from 'grpc-health-check';
import { envoyAuthProto } from '../../src/envoy/protos.js';
import type { CheckRequest } from '../../src/generated/envoy/service/auth/v3/CheckRequest.js';
import type { CheckResponse__Output } from '../../src/generated/envoy/service/auth/v3/CheckResponse.js';

export interface SidecarClient {
  check(request: CheckRequest): Promise<CheckResponse__Output>;
  health(service?: string): Promise<string>;
  close(): void;
}

interface HealthClient extends grpc.Client {
  Check(request: { service: string }, options: grpc.CallOptions, callback: (error: grpc.ServiceError | null, response?: { status: string }) => void): void;
}
type HealthClientConstructor = new (address: string, credentials: grpc.ChannelCredentials, options?: grpc.ChannelOptions) => HealthClient;
const healthPackage = grpc.loadPackageDefinition(protoLoader.loadSync(healthProtoPath, { enums: String })) as unknown as {
  grpc: { health: { v1: { Health: HealthClientConstructor } } };
};
const HealthClient = healthPackage.grpc.health.v1.Health;

/**
 * `ownConnection`: a connection of this client's own, as each Envoy worker thread has. Otherwise
 * grpc-js shares one connection among the clients of an address (its global subchannel pool).
 */
export function sidecarClient(port: number, options: { ownConnection?: boolean } = {}): SidecarClient {
  const address = `127.0.0.1:${port}`;
  const channelOptions: grpc.ChannelOptions = options.ownConnection ? { 'grpc.use_local_subchannel_pool': 1 } : {};
  const auth = new (envoyAuthProto().envoy.service.auth.v3.Authorization)(address, grpc.credentials.createInsecure(), channelOptions);
  const health = new HealthClient(address, grpc.credentials.createInsecure(), channelOptions);
  return {
    check: (request) =>
      new Promise((resolve, reject) => {
        auth.Check(request, { deadline: Date.now() + 5_000 }, (error, response) => (error || !response ? reject(error) : resolve(response)));
      }),
    health: (service = '') =>
      new Promise((resolve, reject) => {
        health.Check({ service }, { deadline: Date.now() + 2_000 }, (error, response) => (error ? reject(error) : resolve(response?.status ?? 'UNKNOWN')));
      }),
    close() {
      auth.close();
      health.close();
    },
  };
}

/** A CheckRequest as Envoy sends it for an HTTP request on a route with these context_extensions. */
export function httpCheck(
  method: string,
  path: string,
  headers: Record<string, string>,
  contextExtensions: Record<string, string> = { direction: 'inbound' },
): CheckRequest {
  return {
    attributes: {
      request: {
        http: {
          method,
          path,
          host: 'gateway.test',
          header_map: { headers: Object.entries(headers).map(([key, value]) => ({ key, raw_value: Buffer.from(value) })) },
        },
      },
      context_extensions: contextExtensions,
    },
  };
}
