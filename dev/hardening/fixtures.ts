/**
 * The identities, SpiceDB model and sidecar configuration shared by the hardening tests and the
 * soak run. Path-independent (no TOOLS_BIN, no repo-relative URLs), so the compiled soak in
 * dist/bench can use it as well as vitest.
 */
import { nowSeconds, signToken } from '../jwt-fixtures.js';
import type { SigningKey } from '../jwt-fixtures.js';

export const SCHEMA = `
definition user {}

definition service {}

definition platform {
    relation relationship_writer: service
    permission write_relationships = relationship_writer
}

definition cloud {
    relation admin: user
    relation viewer: user
    relation delegate: service
    permission view = admin + viewer
    permission create_saga = admin
    permission act_for_users = delegate
}
`;

/**
 * alice may view cl0..cl{N-1}; bob may view none; `a.b` (escaped `=a=2Eb`) may view cl0; the
 * literal id `=a=2Eb` is a different subject that may view nothing (collision attack).
 */
export function relationships(clouds: number): string {
  const lines: string[] = [];
  for (let i = 0; i < clouds; i++) lines.push(`cloud:cl${i}#viewer@user:alice`);
  lines.push('cloud:cl0#viewer@user:=a=2Eb');
  lines.push('cloud:cl0#admin@user:carol');
  lines.push('platform:spicedb#relationship_writer@service:vmcontroller');
  return lines.join('\n');
}

export const EXTERNAL_ISSUER = 'https://idp.example.test';
export const INTERNAL_ISSUER = 'https://mesh.example.test';
/** This pod's service name, and the audience inbound tokens must carry. */
const SERVICE = 'gwadmin';

export interface ConfigInputs {
  readonly spicedbEndpoint: string;
  readonly spicedbKeyEnv: string;
  readonly externalJwksUrl: string;
  readonly internalJwksUrl: string;
  /** Shallow per-section overrides, merged into the sections below. */
  readonly overrides?: Readonly<Record<string, Record<string, unknown>>>;
}

export function sidecarConfig(inputs: ConfigInputs): Record<string, unknown> {
  const base: Record<string, Record<string, unknown> | unknown[]> = {
    server: { drainSeconds: 1 },
    log: { level: 'warn' },
    limits: { maxHeaderBytes: 16384, maxTokenBytes: 4096 },
    service: { name: SERVICE },
    issuers: [
      {
        name: 'ext',
        issuer: EXTERNAL_ISSUER,
        audience: SERVICE,
        kind: 'external',
        subjectType: 'user',
        jwks: { url: inputs.externalJwksUrl, refreshSeconds: 5, cooldownSeconds: 1 },
        algorithms: ['ES256'],
        typ: 'at+jwt',
      },
      {
        name: 'mesh',
        issuer: INTERNAL_ISSUER,
        audience: SERVICE,
        kind: 'internal',
        subjectType: 'service',
        jwks: { url: inputs.internalJwksUrl, refreshSeconds: 5, cooldownSeconds: 1 },
        algorithms: ['RS256'],
        typ: 'at+jwt',
      },
    ],
    spicedb: {
      endpoint: inputs.spicedbEndpoint,
      tls: false,
      presharedKey: { env: inputs.spicedbKeyEnv },
      deadlineMs: 250,
      maxInflight: 64,
      decisionCache: { ttlMs: 2000, maxEntries: 10_000 },
    },
    tokens: { source: { kind: 'mint', issuer: 'https://gwadmin.example.test' }, lifetimeSeconds: 300 },
    inbound: {
      default: 'deny',
      rules: [
        { name: 'view-cloud', match: { http: { methods: ['GET'], path: '/v1/clouds/{cloud}/**' } }, checks: [{ resource: 'cloud:{path.cloud}', permission: 'view' }] },
        { name: 'internal-only', match: { http: { path: '/internal/**' } }, auth: 'token', issuerKinds: ['internal'] },
        { name: 'external-only', match: { http: { path: '/external/**' } }, auth: 'token', issuerKinds: ['external'] },
        { name: 'public', match: { http: { methods: ['GET'], path: '/public' } }, auth: 'none' },
      ],
    },
    outbound: {
      upstreams: [{ audience: 'vmcontroller', authorities: ['vmcontroller'] }],
      // gwadmin (this pod, the only caller Envoy's routes name) may NOT use on-behalf-of.
      onBehalfOf: {
        allowedCallers: ['saga-executor'],
        checks: [{ resource: 'cloud:{header.x-cloud-id}', permission: 'act_for_users', subject: 'service:saga-executor' }],
      },
    },
  };
  const config: Record<string, unknown> = { ...base };
  for (const [section, values] of Object.entries(inputs.overrides ?? {})) {
    const current = config[section];
    config[section] = current !== null && typeof current === 'object' && !Array.isArray(current) ? { ...current, ...values } : values;
  }
  return config;
}

export interface UserTokenOptions {
  readonly aud?: string | string[];
  readonly iss?: string;
  readonly expiresIn?: number;
  readonly nbfIn?: number;
  readonly typ?: string;
  readonly extra?: Record<string, unknown>;
  readonly header?: Record<string, unknown>;
  readonly kid?: string | null;
}

/** A token from the external (user) issuer, ES256, typ at+jwt, for this pod unless told otherwise. */
export function userToken(key: SigningKey, sub: string, options: UserTokenOptions = {}): Promise<string> {
  const now = nowSeconds();
  const claims: Record<string, unknown> = {
    iss: options.iss ?? EXTERNAL_ISSUER,
    sub,
    aud: options.aud ?? SERVICE,
    iat: now,
    exp: now + (options.expiresIn ?? 600),
    ...(options.nbfIn !== undefined ? { nbf: now + options.nbfIn } : {}),
    ...options.extra,
  };
  return signToken(key, claims, {
    typ: options.typ ?? 'at+jwt',
    ...(options.header ? { header: options.header } : {}),
    ...(options.kid !== undefined ? { kid: options.kid } : {}),
  });
}

/** A token from the internal (mesh) issuer, RS256. */
export function serviceToken(key: SigningKey, sub: string, options: UserTokenOptions = {}): Promise<string> {
  return userToken(key, sub, { iss: INTERNAL_ISSUER, ...options });
}
