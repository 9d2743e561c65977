/**
 * Why a token was refused, as the decision log tells an operator: each refusal of the verifier
 * carries its reason and a detail that names the cause (never the token).
 */
import { tmpdir } from 'node:os';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { issuersSchema } from '../../src/identity/config.js';
import { createTokenVerifier } from '../../src/identity/token-verifier.js';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import { jwks, JwksServer, makeSigningKey, nowSeconds, signToken } from '../../dev/jwt-fixtures.js';
import type { SigningKey } from '../../dev/jwt-fixtures.js';

const ISS = 'https://auth.example';
let server: JwksServer;
let key: SigningKey;
const closers: Array<() => Promise<void>> = [];

async function verifier(overrides: Record<string, unknown> = {}) {
  const issuers = issuersSchema.parse([
    { name: 'auth', issuer: ISS, audience: 'gwadmin', kind: 'external', subjectType: 'user', jwks: { url: server.url }, algorithms: ['ES256'], clockSkewSeconds: 0, ...overrides },
  ]);
  const v = await createTokenVerifier(issuers, { metrics: new Metrics({ processMetrics: false }), logger: createLogger({ level: 'silent' }), baseDir: tmpdir(), fetchTimeoutMs: 1000 });
  closers.push(() => v.close());
  return v;
}

const claims = (extra: Record<string, unknown> = {}) => ({ iss: ISS, aud: 'gwadmin', sub: 'alice', iat: nowSeconds() - 10, exp: nowSeconds() + 300, ...extra });

beforeEach(async () => {
  key = await makeSigningKey('ES256');
  server = await new JwksServer().start(jwks(key));
});
afterEach(async () => {
  while (closers.length > 0) await closers.pop()!();
  await server.stop();
});

describe('a refused token', () => {
  it('names the audience it is not for', async () => {
    const v = await verifier();
    expect(await v.verify(await signToken(key, claims()), 'billing')).toEqual({ ok: false, reason: 'wrong_audience', detail: 'token not for billing' });
  });

  it('names an algorithm the issuer does not allow, cut to 16 characters', async () => {
    const v = await verifier();
    const header = Buffer.from(JSON.stringify({ alg: 'RS256-with-a-very-long-name', kid: key.kid })).toString('base64url');
    const payload = Buffer.from(JSON.stringify(claims())).toString('base64url');
    expect(await v.verify(`${header}.${payload}.c2ln`)).toEqual({ ok: false, reason: 'disallowed_algorithm', detail: 'alg RS256-with-a-ver not allowed for auth' });
  });

  it('says an opaque token has nowhere to go when no issuer introspects', async () => {
    const v = await verifier();
    expect(await v.verify('an-opaque-token')).toEqual({ ok: false, reason: 'malformed_token', detail: 'not a JWT, and no issuer introspects opaque tokens' });
  });

  it('names the claim a required-claims list misses', async () => {
    const v = await verifier({ requiredClaims: ['client_id'] });
    expect(await v.verify(await signToken(key, claims()))).toEqual({ ok: false, reason: 'missing_claim', detail: 'missing client_id' });
  });

  it('tells a token not yet valid by nbf from one issued in the future', async () => {
    const v = await verifier({ maxLifetimeSeconds: 3600 });
    const early = await v.verify(await signToken(key, claims({ nbf: nowSeconds() + 120 })));
    expect(early).toMatchObject({ ok: false, reason: 'token_not_yet_valid' });
    expect(!early.ok && early.detail).not.toBe('iat in the future');
    expect(await v.verify(await signToken(key, claims({ iat: nowSeconds() + 120 })))).toEqual({ ok: false, reason: 'token_not_yet_valid', detail: 'iat in the future' });
  });

  it('says a token issued longer ago than the lifetime limit is too old', async () => {
    const v = await verifier({ maxLifetimeSeconds: 600 });
    expect(await v.verify(await signToken(key, claims({ iat: nowSeconds() - 700, exp: nowSeconds() + 60 })))).toEqual({ ok: false, reason: 'token_too_old', detail: 'older than maxLifetimeSeconds' });
  });

  it('refuses a JWT that names an issuer taking only opaque tokens, without asking its introspection endpoint', async () => {
    process.env.JWTAUTH_TEST_OPAQUE_ONLY_SECRET = 'secret';
    try {
      const issuers = issuersSchema.parse([
        {
          name: 'corp',
          issuer: 'https://corp.example',
          audience: 'gw-api',
          kind: 'external',
          subjectType: 'service',
          // Nothing listens there: the JWT must be refused before any call.
          introspection: { endpoint: 'http://127.0.0.1:9/introspect', clientId: 'gw', clientSecret: { env: 'JWTAUTH_TEST_OPAQUE_ONLY_SECRET' } },
        },
      ]);
      const v = await createTokenVerifier(issuers, { metrics: new Metrics({ processMetrics: false }), logger: createLogger({ level: 'silent' }), baseDir: tmpdir(), fetchTimeoutMs: 1000 });
      closers.push(() => v.close());
      const token = await signToken(key, { ...claims(), iss: 'https://corp.example', aud: 'gw-api' });
      expect(await v.verify(token)).toEqual({ ok: false, reason: 'unknown_key', detail: 'issuer corp takes opaque tokens only (no jwks)' });
    } finally {
      delete process.env.JWTAUTH_TEST_OPAQUE_ONLY_SECRET;
    }
  });
});
