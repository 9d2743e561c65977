/**
 * The unary gRPC call the message-field scenarios send (dev/bench/namespaces.proto): one
 * CreateNamespaceRequest of about 200 bytes in its gRPC frame, with the headers a gRPC client sends.
 * The load generators send the framed bytes from a file as the request body (h2load -d, vegeta
 * `@file`). Expectations send one call with node:http2 and read grpc-status: a gRPC denial is
 * HTTP 200 (Envoy's local reply carries grpc-status 7 in its headers), so the HTTP status alone
 * cannot tell an allowed call from a denied one.
 */
import { writeFileSync } from 'node:fs';
import { connect } from 'node:http2';
import { join } from 'node:path';
import protobuf from 'protobufjs';
import { frameMessage } from '../../src/body/grpc-frame.js';
import { PACKAGE_ROOT } from '../../src/base/package-root.js';

// From the package root, so the bench's configuration can be loaded from source too (the Envoy
// check's test of every repository config), not only from dist/.
export const NAMESPACES_PROTO = join(PACKAGE_ROOT, 'dev', 'bench', 'namespaces.proto');
export const NAMESPACES_SERVICE = 'bench.v1.Namespaces';
/** Same request type, names of the same length; see the .proto. */
export type NamespacesMethod = 'CreateByMessage' | 'CreateByHeaders';
export const methodPath = (method: NamespacesMethod): string => `/${NAMESPACES_SERVICE}/${method}`;

/** The cloud the bench's user administers (every SpiceDB of the run starts with cloud:cl0#admin@user:alice, groups.ts). */
export const CALLER_CLOUD = 'cl0';
/** Read by the header rule; every call sends it naming the caller's cloud, whatever the message names. */
export const CLOUD_HEADER = 'x-cloud-id';

// keepCase: field names as the .proto writes them, as the sidecar's descriptors keep them.
const requestType = new protobuf.Root().loadSync(NAMESPACES_PROTO, { keepCase: true }).lookupType('bench.v1.CreateNamespaceRequest');

/** The message, naming `cloudId`; every other field the same, so every variant has the same size. */
export function createNamespaceMessage(cloudId: string): Buffer {
  const fields = {
    cloud_id: cloudId,
    namespace_id: 'ns-4f1c9a2e-7b3d-4e8a-9c61-0d2f5b8e7a13',
    display_name: 'payments-staging-eu-west',
    description: 'Staging workloads of the payments team in eu-west',
    labels: { team: 'payments', env: 'staging' },
    cpu_quota_millis: 16_000,
    memory_quota_bytes: 34_359_738_368,
    request_id: '0b6f3c1e-92d4-4a57-8e0f-5c3a7d9b2e61',
  };
  return Buffer.from(requestType.encode(requestType.fromObject(fields)).finish());
}

/** The framed request naming `cloudId`, written to `dir` for the load generators; returns the file. */
export function writeRequestBody(dir: string, cloudId: string): string {
  const file = join(dir, `create-namespace-${cloudId}.grpc`);
  writeFileSync(file, frameMessage(createNamespaceMessage(cloudId)));
  return file;
}

/** What a gRPC client sends besides :method POST and :path (and authorization, added by the caller). */
export const GRPC_HEADERS: Readonly<Record<string, string>> = { 'content-type': 'application/grpc', te: 'trailers', [CLOUD_HEADER]: CALLER_CLOUD };

export interface GrpcOutcome {
  readonly httpStatus: number;
  /** From the trailers, or from the headers of a trailers-only answer (Envoy's local replies). */
  readonly grpcStatus: number | undefined;
  /** The sidecar's x-jwtauth-reason on a denial. */
  readonly reason: string | undefined;
}

/** One unary call over h2c (prior knowledge), `body` as the whole request stream. */
export function unaryCall(origin: string, path: string, headers: Readonly<Record<string, string>>, body: Uint8Array, timeoutMs = 5_000): Promise<GrpcOutcome> {
  return new Promise((resolve, reject) => {
    const session = connect(origin);
    const timer = setTimeout(() => {
      session.destroy();
      reject(new Error(`no answer from ${origin}${path} within ${timeoutMs} ms`));
    }, timeoutMs);
    const fail = (error: Error): void => {
      clearTimeout(timer);
      session.destroy();
      reject(error);
    };
    session.on('error', fail);
    let httpStatus = 0;
    let grpcStatus: string | undefined;
    let reason: string | undefined;
    const stream = session.request({ ':method': 'POST', ':path': path, ...headers });
    stream.on('response', (responseHeaders) => {
      httpStatus = Number(responseHeaders[':status']);
      grpcStatus = responseHeaders['grpc-status']?.toString();
      reason = responseHeaders['x-jwtauth-reason']?.toString();
    });
    stream.on('trailers', (trailers) => {
      grpcStatus = trailers['grpc-status']?.toString() ?? grpcStatus;
    });
    stream.on('error', fail);
    stream.on('close', () => {
      clearTimeout(timer);
      session.close();
      resolve({ httpStatus, grpcStatus: grpcStatus === undefined ? undefined : Number(grpcStatus), reason });
    });
    stream.resume();
    stream.end(body);
  });
}
