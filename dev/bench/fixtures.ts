/**
 * What every peer verifies: one ES256 key, one issuer, one audience. Tokens are signed here with
 * node:crypto directly (synchronous, ~50 µs) because the token-count scenario needs 100,000 of them.
 */
import { createPrivateKey, generateKeyPairSync, randomUUID, sign } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLOUD_HEADER, NAMESPACES_PROTO, NAMESPACES_SERVICE } from './grpc-call.js';
import type { NamespacesMethod } from './grpc-call.js';

export const ISSUER = 'https://issuer.bench.local';
export const AUDIENCE = 'bench-api';
const SUBJECT = 'alice';
const KID = 'bench-es256';
/** The audience of the outbound scenario's upstream (route context_extensions). */
export const UPSTREAM = 'vmcontroller';

export interface BenchKeys {
  readonly privateKey: KeyObject;
  /** `{"keys":[...]}` as a string: the same document for jwt_authn, OPA and the sidecar. */
  readonly jwks: string;
  readonly jwksFile: string;
  /** A second key (PKCS#8 PEM) the sidecar mints outbound service tokens with. */
  readonly mintKeyFile: string;
}

export function makeKeys(dir: string): BenchKeys {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = publicKey.export({ format: 'jwk' });
  const jwks = JSON.stringify({ keys: [{ ...jwk, kid: KID, alg: 'ES256', use: 'sig' }] });
  const jwksFile = join(dir, 'jwks.json');
  writeFileSync(jwksFile, jwks);
  const mint = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const mintKeyFile = join(dir, 'mint-key.pem');
  writeFileSync(mintKeyFile, mint.privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
  return { privateKey: createPrivateKey(privateKey.export({ format: 'pem', type: 'pkcs8' })), jwks, jwksFile, mintKeyFile };
}

const b64 = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');
const HEADER = b64({ alg: 'ES256', kid: KID, typ: 'JWT' });

/** A token valid for two hours; `jti` makes every token distinct (and so every cache key). */
export function signToken(keys: BenchKeys, subject = SUBJECT): string {
  const now = Math.floor(Date.now() / 1000);
  const input = `${HEADER}.${b64({ iss: ISSUER, aud: AUDIENCE, sub: subject, iat: now, exp: now + 7200, jti: randomUUID() })}`;
  const signature = sign('sha256', Buffer.from(input), { key: keys.privateKey, dsaEncoding: 'ieee-p1363' });
  return `${input}.${signature.toString('base64url')}`;
}

/** `service` is the type of the sidecar's own identity (service.subjectType): without it the sidecar is never ready (schema check). */
export const SCHEMA = `
definition user {}
definition service {}
definition cloud {
  relation admin: user
  relation member: user
  permission view = member + admin
}
`;

/**
 * Sidecar configuration for the benchmark: the inbound rule under test (GET /v1/clouds/{cloud}/**
 * needs `view` on the cloud), `fillerRules` more rules on other paths for the rule-count scenario,
 * the message-field scenarios' gRPC rules, and outbound service tokens for `UPSTREAM`.
 */
export interface SidecarVariant {
  /** Rules on other paths, written before the one under test. */
  readonly fillerRules?: number;
  /** 0 turns the decision cache off, so every Check asks SpiceDB. */
  readonly decisionCacheTtlMs?: number;
  /**
   * The message-field scenarios' two gRPC rules and the descriptors (dev/bench/namespaces.proto). The
   * rules differ only in where the cloud comes from: one method's message, the other's header.
   */
  readonly messageRules?: boolean;
  /** Tracing on, sampling this fraction of Checks, exporting to the endpoint the bench gives (bench/otlp-sink.ts). */
  readonly tracing?: { readonly ratio: number };
  /** Worker mode: `server.workers` (docs/configuration.md#worker-mode). */
  readonly workers?: number;
  /** The decision cache's freshness mode (default: the sidecar's, watch). */
  readonly freshness?: 'watch' | 'ttl';
  /** `spicedb.batch.maxConcurrentCalls`: how many CheckBulkPermissions calls may be in flight. */
  readonly maxConcurrentCalls?: number;
}

/** Where each dev/bench/namespaces.proto method's rule takes the cloud from. */
const CLOUD_TEMPLATE: Readonly<Record<NamespacesMethod, string>> = {
  CreateByMessage: 'cloud:{body.cloud_id}',
  CreateByHeaders: `cloud:{header.${CLOUD_HEADER}}`,
};

function messageRules(): Array<Record<string, unknown>> {
  return Object.entries(CLOUD_TEMPLATE).map(([method, resource]) => ({
    name: `namespaces-${method.toLowerCase()}`,
    match: { grpc: { service: NAMESPACES_SERVICE, method } },
    checks: [{ resource, permission: 'view' }],
  }));
}

export function sidecarConfig(keys: BenchKeys, spicedbEndpoint: string, keyEnv: string, variant: SidecarVariant = {}, otlpEndpoint?: string): Record<string, unknown> {
  const { fillerRules = 0, decisionCacheTtlMs, freshness, messageRules: withMessageRules = false } = variant;
  const rules: Array<Record<string, unknown>> = [];
  // Filler first, so the rule under test is the last one written: no "first rule wins" shortcut.
  for (let i = 0; i < fillerRules; i++) {
    rules.push({
      name: `filler-${i}`,
      match: { http: { methods: ['GET'], path: `/v1/svc${i}/{id}/**` } },
      checks: [{ resource: 'cloud:{path.id}', permission: 'view' }],
    });
  }
  rules.push({
    name: 'view-cloud',
    match: { http: { methods: ['GET'], path: '/v1/clouds/{cloud}/**' } },
    checks: [{ resource: 'cloud:{path.cloud}', permission: 'view' }],
  });
  if (withMessageRules) rules.push(...messageRules());
  return {
    server: { drainSeconds: 0, ...(variant.workers === undefined ? {} : { workers: variant.workers }) },
    log: { level: 'warn' },
    service: { name: 'bench-client' },
    issuers: [
      {
        name: 'bench',
        issuer: ISSUER,
        audience: AUDIENCE,
        kind: 'internal',
        subjectType: 'user',
        jwks: { file: keys.jwksFile },
        algorithms: ['ES256'],
      },
    ],
    spicedb: {
      endpoint: spicedbEndpoint,
      tls: false,
      presharedKey: { env: keyEnv },
      decisionCache: { ...(decisionCacheTtlMs === undefined ? {} : { ttlMs: decisionCacheTtlMs }), ...(freshness === undefined ? {} : { freshness }) },
      ...(variant.maxConcurrentCalls === undefined ? {} : { batch: { maxConcurrentCalls: variant.maxConcurrentCalls } }),
    },
    tokens: { source: { kind: 'mint', issuer: 'https://sidecar.bench.local', algorithm: 'ES256', keys: [{ file: keys.mintKeyFile }] } },
    // Descriptors for CreateByMessage's rule: loaded once, at start; a call pays only for reading.
    ...(withMessageRules ? { body: { protoFiles: [NAMESPACES_PROTO] } } : {}),
    inbound: { default: 'deny', rules },
    outbound: { upstreams: [{ audience: UPSTREAM, authorities: [] }] },
    // Root spans here (the bench sends no traceparent), so the ratio alone decides what is sampled.
    ...(variant.tracing ? { tracing: { enabled: true, endpoint: otlpEndpoint, sampler: 'traceidratio', ratio: variant.tracing.ratio } } : {}),
  };
}

/**
 * The OPA-Envoy peer's policy: the same verification (signature with the same key, `iss`, `aud`,
 * `exp`), nothing else. With Envoy's `encode_raw_headers: true` (the deployed filter setting)
 * OPA-Envoy hands Rego `headerMap.headers[]` with base64 `rawValue`s, so the policy decodes the
 * authorization entry and, like the sidecar, refuses a repeated one. `rawHeaders: false` is the
 * classic OPA-Envoy input (`headers.authorization`), its cheapest path.
 */
export function opaPolicy(keys: BenchKeys, rawHeaders: boolean): string {
  const source = rawHeaders
    ? `authorizations := [base64.decode(h.rawValue) | some h in input.attributes.request.http.headerMap.headers; lower(h.key) == "authorization"]

bearer := substring(authorizations[0], 7, -1) if {
	count(authorizations) == 1
	startswith(authorizations[0], "Bearer ")
}`
    : `bearer := substring(authorization, 7, -1) if {
	authorization := input.attributes.request.http.headers.authorization
	startswith(authorization, "Bearer ")
}`;
  return `package envoy.authz

import rego.v1

default allow := false

jwks := ${JSON.stringify(keys.jwks)}

${source}

allow if {
	[valid, _, _] := io.jwt.decode_verify(bearer, {"cert": jwks, "iss": ${JSON.stringify(ISSUER)}, "aud": ${JSON.stringify(AUDIENCE)}})
	valid
}
`;
}
