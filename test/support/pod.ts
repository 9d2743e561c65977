/**
 * A whole pod for end-to-end tests, every part real: SpiceDB (`spicedb serve`), the sidecar as
 * its own process, Envoy running envoy/envoy.yaml (ports rewritten, nothing else), an app behind
 * the ingress listener and a "vmcontroller" upstream behind the egress listener. Tokens are signed
 * by a test issuer whose public keys the sidecar reads from a JWKS file.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { request as httpRequestRaw } from 'node:http';
import { exportPKCS8, generateKeyPair } from 'jose';
import type { JWTPayload } from 'jose';
import { startEchoUpstream } from '../../dev/echo-upstream.js';
import type { EchoUpstream } from '../../dev/echo-upstream.js';
import { startEnvoy } from '../../dev/envoy.js';
import type { RunningEnvoy } from '../../dev/envoy.js';
import { jwks, makeSigningKey, nowSeconds, signToken } from '../../dev/jwt-fixtures.js';
import type { SigningKey } from '../../dev/jwt-fixtures.js';
import { startSidecar } from './sidecar.js';
import type { RunningSidecar } from './sidecar.js';
import { startSpicedb } from '../../dev/spicedb.js';
import type { SpicedbServer } from '../../dev/spicedb.js';

export const MESH_ISSUER = 'https://mesh.jwtauth.test';
export const PUBLIC_ISSUER = 'https://auth.public.test';
export const MINT_ISSUER = 'https://gwadmin.jwtauth.test';

const POD_SCHEMA = readFileSync(new URL('../../examples/schema.zed', import.meta.url), 'utf8');

export interface Pod {
  readonly spicedb: SpicedbServer;
  readonly sidecar: RunningSidecar;
  readonly envoy: RunningEnvoy;
  /** The app behind the ingress listener. */
  readonly app: EchoUpstream;
  /** The upstream behind the egress listener (cluster vmcontroller). */
  readonly vmcontroller: EchoUpstream;
  /** Signs tokens as the internal mesh issuer (kind internal). */
  readonly mesh: SigningKey;
  /** Signs tokens as the public auth service (kind external). */
  readonly publicAuth: SigningKey;
  readonly ingress: string;
  readonly egress: string;
  /** A valid internal user token for the gateway, with overrides. */
  userToken(sub: string, extra?: JWTPayload): Promise<string>;
  stop(): Promise<void>;
}

export interface PodOptions {
  readonly relationships: string;
  /** Extra top-level config merged over the defaults (shallow per section). */
  readonly config?: Record<string, unknown>;
  /** Envoy's worker threads, each with its own connection to the sidecar (default 1). */
  readonly envoyConcurrency?: number;
}

export async function startPod(options: PodOptions): Promise<Pod> {
  const dir = mkdtempSync(join(tmpdir(), 'jwtauth-pod-'));
  const [mesh, publicAuth, mintKeys] = await Promise.all([
    makeSigningKey('ES256', 'mesh-1'),
    makeSigningKey('ES256', 'public-1'),
    generateKeyPair('ES256', { extractable: true }),
  ]);
  writeFileSync(join(dir, 'mesh-jwks.json'), JSON.stringify(jwks(mesh)));
  writeFileSync(join(dir, 'public-jwks.json'), JSON.stringify(jwks(publicAuth)));
  writeFileSync(join(dir, 'signing-key.pem'), await exportPKCS8(mintKeys.privateKey));

  const [spicedb, app, vmcontroller] = await Promise.all([
    startSpicedb({ schema: POD_SCHEMA, relationships: options.relationships }),
    startEchoUpstream(),
    startEchoUpstream(),
  ]);

  const config = {
    service: { name: 'gwadmin' },
    log: { level: 'info' },
    spicedb: { endpoint: spicedb.endpoint, tls: false, presharedKey: { env: 'SPICEDB_KEY' }, deadlineMs: 500, decisionCache: { ttlMs: 1000 } },
    issuers: [
      {
        name: 'mesh',
        issuer: MESH_ISSUER,
        audience: 'gwadmin',
        kind: 'internal',
        subjectType: 'service',
        userSubjectType: 'user',
        jwks: { file: join(dir, 'mesh-jwks.json') },
        algorithms: ['ES256'],
      },
      {
        name: 'public',
        issuer: PUBLIC_ISSUER,
        audience: 'public-api',
        kind: 'external',
        subjectType: 'user',
        jwks: { file: join(dir, 'public-jwks.json') },
        algorithms: ['ES256'],
      },
    ],
    tokens: { source: { kind: 'mint', issuer: MINT_ISSUER, keys: [{ file: join(dir, 'signing-key.pem') }] } },
    inbound: {
      rules: [
        {
          name: 'create-namespace',
          match: { http: { methods: ['POST'], path: '/v1/clouds/{cloud}/namespaces' } },
          issuerKinds: ['internal'],
          checks: [{ resource: 'cloud:{path.cloud}', permission: 'create_namespace' }],
        },
        {
          name: 'echo-grpc',
          match: { grpc: { service: 'demo.Echo', method: 'Call' } },
          checks: [{ resource: 'cloud:{header.x-cloud-id}', permission: 'view' }],
        },
        { name: 'public-status', match: { http: { methods: ['GET'], path: '/v1/status' } }, auth: 'none' },
      ],
    },
    outbound: { upstreams: [{ audience: 'vmcontroller', authorities: ['vmcontroller'] }] },
    ...options.config,
  };
  const sidecar = await startSidecar(config, { env: { SPICEDB_KEY: spicedb.presharedKey } });
  const envoy = await startEnvoy({ app: app.port, vmcontroller: vmcontroller.port, sidecar: sidecar.grpcPort }, undefined, { concurrency: options.envoyConcurrency ?? 1 });

  return {
    spicedb,
    sidecar,
    envoy,
    app,
    vmcontroller,
    mesh,
    publicAuth,
    ingress: `http://127.0.0.1:${envoy.ports.ingress}`,
    egress: `http://127.0.0.1:${envoy.ports.egress}`,
    userToken: (sub, extra = {}) =>
      signToken(mesh, { iss: MESH_ISSUER, aud: 'gwadmin', sub, client_id: 'portal', iat: nowSeconds(), exp: nowSeconds() + 300, ...extra }),
    async stop() {
      await Promise.allSettled([envoy.stop(), sidecar.stop(), spicedb.stop(), app.close(), vmcontroller.close()]);
    },
  };
}

export interface GrpcOutcome {
  readonly code: grpc.status;
  readonly details: string;
  readonly trailers: Record<string, string>;
}

/** One unary gRPC call with an empty message; the echo app answers any method. */
export function grpcCall(address: string, path: string, metadata: Record<string, string>): Promise<GrpcOutcome> {
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  const md = new grpc.Metadata();
  for (const [key, value] of Object.entries(metadata)) md.set(key, value);
  return new Promise((resolve) => {
    const call = client.makeUnaryRequest(
      path,
      (value: Buffer) => value,
      (value: Buffer) => value,
      Buffer.alloc(0),
      md,
      { deadline: Date.now() + 5_000 },
      () => {
        // The outcome is read from the 'status' event, which grpc-js emits after this callback.
      },
    );
    call.on('status', (result: grpc.StatusObject) => {
      client.close();
      const trailers = Object.fromEntries(Object.entries(result.metadata.getMap()).map(([k, v]) => [k, String(v)]));
      resolve({ code: result.code, details: result.details, trailers });
    });
  });
}

export interface PlainResponse {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
}

/**
 * An HTTP/1.1 request with full control of the headers, including Host (fetch refuses to set it),
 * which is how an app reaches a named upstream through the egress listener.
 */
export function httpRequest(url: string, options: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<PlainResponse> {
  return new Promise((resolve, reject) => {
    const request = httpRequestRaw(url, { method: options.method ?? 'GET', headers: options.headers ?? {} }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body }));
    });
    request.on('error', reject);
    request.end(options.body);
  });
}
