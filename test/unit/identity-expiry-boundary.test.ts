/**
 * A token is accepted until exp plus the clock skew and never from that instant on, whether its
 * verification is cached or not. The verifier's clock is injected, so the boundary is checked to
 * the millisecond: no timing assertion, no sleeping.
 */
import { tmpdir } from 'node:os';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { issuersSchema } from '../../src/identity/config.js';
import { createTokenVerifier } from '../../src/identity/token-verifier.js';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import { jwks, JwksServer, makeSigningKey, signToken } from '../../dev/jwt-fixtures.js';
import type { SigningKey } from '../../dev/jwt-fixtures.js';

const ISS = 'https://auth.example';
const SKEW_S = 30;
let server: JwksServer;
let key: SigningKey;
let clockMs = 0;
const closers: Array<() => Promise<void>> = [];

async function verifier(overrides: Record<string, unknown> = {}) {
  const issuers = issuersSchema.parse([
    { name: 'auth', issuer: ISS, audience: 'gwadmin', kind: 'external', subjectType: 'user', jwks: { url: server.url }, algorithms: ['ES256'], clockSkewSeconds: SKEW_S, ...overrides },
  ]);
  const v = await createTokenVerifier(issuers, { metrics: new Metrics({ processMetrics: false }), logger: createLogger({ level: 'silent' }), baseDir: tmpdir(), fetchTimeoutMs: 1000, now: () => clockMs });
  closers.push(() => v.close());
  return v;
}

beforeEach(async () => {
  key = await makeSigningKey('ES256');
  server = await new JwksServer().start(jwks(key));
});
afterEach(async () => {
  while (closers.length > 0) await closers.pop()!();
  await server.stop();
});

describe('the end of a token’s validity', () => {
  const EXP_S = Math.floor(Date.now() / 1000) + 600;
  const claims = { iss: ISS, aud: 'gwadmin', sub: 'alice', iat: EXP_S - 900, exp: EXP_S };

  it('is exp plus the skew, to the millisecond, for a token served from the cache', async () => {
    const v = await verifier();
    const token = await signToken(key, claims);
    clockMs = (EXP_S - 100) * 1000;
    expect(await v.verify(token)).toMatchObject({ ok: true });
    clockMs = (EXP_S + SKEW_S) * 1000 - 1;
    expect(await v.verify(token)).toMatchObject({ ok: true });
    clockMs = (EXP_S + SKEW_S) * 1000;
    expect(await v.verify(token)).toMatchObject({ ok: false, reason: 'token_expired' });
  });

  it('is the same for a token seen first at that instant', async () => {
    const v = await verifier();
    clockMs = (EXP_S + SKEW_S) * 1000;
    expect(await v.verify(await signToken(key, claims))).toMatchObject({ ok: false, reason: 'token_expired' });
  });

  it('with a lifetime limit that ends after exp, is still exp plus the skew, cached or not', async () => {
    const v = await verifier({ maxLifetimeSeconds: 900 });
    const token = await signToken(key, { ...claims, iat: EXP_S - 800 });
    clockMs = (EXP_S - 100) * 1000;
    expect(await v.verify(token)).toMatchObject({ ok: true });
    clockMs = (EXP_S + SKEW_S) * 1000 - 1;
    expect(await v.verify(token)).toMatchObject({ ok: true });
    clockMs = (EXP_S + SKEW_S) * 1000;
    expect(await v.verify(token)).toMatchObject({ ok: false });
  });

  it('accepts a lifetime of exactly the limit and refuses one second more', async () => {
    const v = await verifier({ maxLifetimeSeconds: 900 });
    clockMs = (EXP_S - 100) * 1000;
    expect(await v.verify(await signToken(key, { ...claims, iat: EXP_S - 900 }))).toMatchObject({ ok: true });
    expect(await v.verify(await signToken(key, { ...claims, iat: EXP_S - 901 }))).toMatchObject({ ok: false, reason: 'token_too_old', detail: 'lifetime exceeds maxLifetimeSeconds' });
  });
});
