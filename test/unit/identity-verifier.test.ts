import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { issuersSchema } from '../../src/identity/config.js';
import { createTokenVerifier } from '../../src/identity/token-verifier.js';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import { hs256WithPublicKey, jwks, JwksServer, makeSigningKey, nowSeconds, sameKeyForAlg, signToken, unsignedToken } from '../../dev/jwt-fixtures.js';
import type { SigningKey } from '../../dev/jwt-fixtures.js';

const ISS = 'https://auth.example';
const logger = createLogger({ level: 'silent' });

let server: JwksServer;
let key: SigningKey;
let offsetMs = 0;
const now = (): number => Date.now() + offsetMs;
const closers: Array<() => Promise<void>> = [];

function issuers(overrides: Record<string, unknown> = {}, jwksSource: Record<string, unknown> = { url: server.url, cooldownSeconds: 30 }) {
  return issuersSchema.parse([
    { name: 'auth', issuer: ISS, audience: 'gwadmin', kind: 'external', subjectType: 'user', jwks: jwksSource, algorithms: ['ES256', 'RS256'], ...overrides },
  ]);
}

async function verifier(overrides: Record<string, unknown> = {}, jwksSource?: Record<string, unknown>, metrics = new Metrics({ processMetrics: false })) {
  const v = await createTokenVerifier(issuers(overrides, jwksSource), { metrics, logger, baseDir: tmpdir(), fetchTimeoutMs: 1000, now });
  closers.push(() => v.close());
  return v;
}

const claims = (extra: Record<string, unknown> = {}) => ({ iss: ISS, aud: 'gwadmin', sub: 'alice', iat: nowSeconds(), exp: nowSeconds() + 300, ...extra });

async function counter(metrics: Metrics, name: string, labels: Record<string, string>): Promise<number> {
  const metric = (await metrics.registry.getMetricsAsJSON()).find((m) => m.name === name);
  const value = metric?.values.find((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l));
  return value?.value ?? 0;
}

beforeEach(async () => {
  offsetMs = 0;
  key = await makeSigningKey('ES256');
  server = await new JwksServer().start(jwks(key));
});
afterEach(async () => {
  while (closers.length) await closers.pop()!();
  await server.stop();
});

describe('token verification', () => {
  it('accepts a valid token and exposes the verified identity', async () => {
    const v = await verifier();
    const result = await v.verify(await signToken(key, claims({ act: { sub: 'saga-runner' } })));
    expect(result).toMatchObject({
      ok: true,
      value: { issuer: 'auth', iss: ISS, issuerKind: 'external', subjectType: 'user', subject: 'alice', audience: ['gwadmin'], actor: 'saga-runner' },
    });
    // The fingerprint stands for the token in caches: a SHA-256, never the token itself.
    expect(result.ok && result.value.fingerprint).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(v.ready()).toBe(true);
  });

  it('rejects alg none and HS256 signed with the public key', async () => {
    const v = await verifier();
    expect(await v.verify(unsignedToken({ kid: key.kid }, claims()))).toMatchObject({ ok: false, reason: 'disallowed_algorithm' });
    expect(await v.verify(hs256WithPublicKey(key, claims()))).toMatchObject({ ok: false, reason: 'disallowed_algorithm' });
  });

  it('binds each key to one algorithm: an RSA key published for RS256 cannot verify PS256', async () => {
    const rsa = await makeSigningKey('RS256', 'rsa1');
    server.setKeys(jwks(rsa));
    const v = await verifier({ algorithms: ['RS256', 'PS256'] });
    expect((await v.verify(await signToken(rsa, claims()))).ok).toBe(true);
    const ps = await signToken(await sameKeyForAlg(rsa, 'PS256'), claims());
    expect(await v.verify(ps)).toMatchObject({ ok: false, reason: 'disallowed_algorithm' });
  });

  it('drops keys without alg that would fit two allowed algorithms', async () => {
    const rsa = await makeSigningKey('RS256', 'rsa-noalg', false);
    server.setKeys(jwks(rsa, key));
    const v = await verifier({ algorithms: ['RS256', 'PS256', 'ES256'] });
    expect(await v.verify(await signToken(rsa, claims()))).toMatchObject({ ok: false, reason: 'unknown_key' });
    expect((await v.verify(await signToken(key, claims()))).ok).toBe(true);
  });

  it('maps time failures to their reasons and honours clock skew', async () => {
    const v = await verifier({ clockSkewSeconds: 30 });
    expect(await v.verify(await signToken(key, claims({ exp: nowSeconds() - 60 })))).toMatchObject({ ok: false, reason: 'token_expired' });
    expect((await v.verify(await signToken(key, claims({ exp: nowSeconds() - 10 })))).ok).toBe(true);
    expect(await v.verify(await signToken(key, claims({ nbf: nowSeconds() + 120 })))).toMatchObject({ ok: false, reason: 'token_not_yet_valid' });
  });

  it('refuses every malformed time claim with its own reason, never an allow', async () => {
    const v = await verifier({ clockSkewSeconds: 30 });
    expect(await v.verify(await signToken(key, claims({ iat: 'yesterday' })))).toMatchObject({ ok: false, reason: 'invalid_claim', detail: 'iat' });
    expect(await v.verify(await signToken(key, claims({ nbf: 'later' })))).toMatchObject({ ok: false, reason: 'token_not_yet_valid' });
    expect(await v.verify(await signToken(key, claims({ exp: 'soon' })))).toMatchObject({ ok: false, reason: 'invalid_claim' });
    expect(await v.verify(await signToken(key, claims({ nbf: nowSeconds() + 20 })))).toMatchObject({ ok: true });
    const limited = await verifier({ clockSkewSeconds: 30, maxLifetimeSeconds: 600 });
    expect(await limited.verify(await signToken(key, claims({ iat: nowSeconds() + 120 })))).toMatchObject({ ok: false, reason: 'token_not_yet_valid', detail: 'iat in the future' });
    expect(await limited.verify(await signToken(key, claims({ iat: nowSeconds() - 1200, exp: nowSeconds() - 1200 + 600 })))).toMatchObject({ ok: false, reason: 'token_expired' });
    expect(await limited.verify(await signToken(key, claims({ iat: nowSeconds() - 700, exp: nowSeconds() + 60 })))).toMatchObject({ ok: false, reason: 'token_too_old' });
  });

  it('refuses a token whose sub or aud is not the kind of value the identity needs', async () => {
    const v = await verifier();
    expect(await v.verify(await signToken(key, claims({ iss: undefined })))).toMatchObject({ ok: false, reason: 'missing_claim', detail: 'missing iss' });
    expect(await v.verify(await signToken(key, claims({ exp: 'soon' })))).toMatchObject({ ok: false, reason: 'invalid_claim', detail: 'exp' });
    expect(await v.verify(await signToken(key, claims({ sub: '' })))).toMatchObject({ ok: false, reason: 'invalid_claim', detail: 'sub is not a non-empty string' });
    expect(await v.verify(await signToken(key, claims({ sub: 7 })))).toMatchObject({ ok: false, reason: 'invalid_claim' });
    expect(await v.verify(await signToken(key, claims({ aud: [] })))).toMatchObject({ ok: false, reason: 'wrong_audience' });
    expect(await v.verify(await signToken(key, claims({ aud: 7 })))).toMatchObject({ ok: false, reason: 'wrong_audience', detail: 'aud missing or not strings' });
    expect(await v.verify(await signToken(key, claims({ aud: undefined })))).toMatchObject({ ok: false, reason: 'wrong_audience' });
  });

  it('enforces the maximum lifetime both as exp - iat and as age', async () => {
    const v = await verifier({ maxLifetimeSeconds: 600 });
    expect(await v.verify(await signToken(key, claims({ exp: nowSeconds() + 3600 })))).toMatchObject({ ok: false, reason: 'token_too_old' });
    expect(await v.verify(await signToken(key, claims({ iat: nowSeconds() - 1200, exp: nowSeconds() + 60 })))).toMatchObject({ ok: false, reason: 'token_too_old' });
    expect(await v.verify(await signToken(key, claims({ iat: undefined })))).toMatchObject({ ok: false, reason: 'missing_claim' });
  });

  it('checks iss, aud, typ and required claims exactly', async () => {
    const v = await verifier({ typ: 'at+jwt', requiredClaims: ['client_id'] });
    const good = claims({ client_id: 'c1' });
    expect((await v.verify(await signToken(key, good, { typ: 'at+jwt' }))).ok).toBe(true);
    expect(await v.verify(await signToken(key, { ...good, iss: 'https://auth.example/' }, { typ: 'at+jwt' }))).toMatchObject({ ok: false, reason: 'unknown_issuer' });
    expect(await v.verify(await signToken(key, { ...good, aud: 'other' }, { typ: 'at+jwt' }))).toMatchObject({ ok: false, reason: 'wrong_audience' });
    expect(await v.verify(await signToken(key, good, { typ: 'JWT' }))).toMatchObject({ ok: false, reason: 'wrong_token_type' });
    expect(await v.verify(await signToken(key, good))).toMatchObject({ ok: false, reason: 'wrong_token_type' });
    expect(await v.verify(await signToken(key, claims(), { typ: 'at+jwt' }))).toMatchObject({ ok: false, reason: 'missing_claim' });
    expect(await v.verify(await signToken(key, { ...good, sub: undefined }, { typ: 'at+jwt' }))).toMatchObject({ ok: false, reason: 'missing_claim' });
  });

  it('matches an audience whole: a token for gwadmin-staging is not for gwadmin, nor one for gwadmin for gwadmin-staging', async () => {
    const v = await verifier();
    expect((await v.verify(await signToken(key, claims()))).ok).toBe(true);
    for (const aud of ['gwadmin-staging', 'staging-gwadmin', 'gw', ['gwadmin-staging', 'billing'], ['gwadmi', 'n']]) {
      expect(await v.verify(await signToken(key, claims({ aud })))).toMatchObject({ ok: false, reason: 'wrong_audience' });
    }
    const token = await signToken(key, claims({ aud: ['gwadmin', 'billing'] }));
    expect(await v.verify(token, 'gwadmin-staging')).toMatchObject({ ok: false, reason: 'wrong_audience' });
    expect(await v.verify(token, 'bill')).toMatchObject({ ok: false, reason: 'wrong_audience' });
    expect((await v.verify(token, 'billing')).ok).toBe(true);
  });

  it('refuses a token signed by a key of an algorithm not allowed, even when the JWKS publishes that key beside an allowed one', async () => {
    const rs384 = await makeSigningKey('RS384', 'rsa-384');
    server.setKeys(jwks(key, rs384));
    const v = await verifier({ algorithms: ['ES256'] });
    expect((await v.verify(await signToken(key, claims()))).ok).toBe(true);
    const result = await v.verify(await signToken(rs384, claims()));
    expect(result.ok).toBe(false);
    expect(result).toMatchObject({ ok: false, reason: 'disallowed_algorithm' });
    // Without a kid the token cannot pick the key by name either.
    expect((await v.verify(await signToken(rs384, claims(), { kid: null }))).ok).toBe(false);
  });

  it('rejects a signature from another key that claims a known kid', async () => {
    const attacker = await makeSigningKey('ES256', key.kid);
    const v = await verifier();
    expect(await v.verify(await signToken(attacker, claims()))).toMatchObject({ ok: false, reason: 'bad_signature' });
  });

  it('never follows jku: a token pointing at the attacker JWKS is not verified with it', async () => {
    const attacker = await makeSigningKey('ES256', 'evil');
    const evil = await new JwksServer().start(jwks(attacker));
    try {
      const v = await verifier();
      const token = await signToken(attacker, claims(), { header: { jku: evil.url, jwk: attacker.publicJwk } });
      expect(await v.verify(token)).toMatchObject({ ok: false, reason: 'unknown_key' });
      expect(evil.hits).toBe(0);
    } finally {
      await evil.stop();
    }
  });

  it('returns malformed_token for garbage, never throws', async () => {
    const v = await verifier();
    const header = Buffer.from('{"alg":"ES256"}').toString('base64url');
    for (const bad of ['abc', 'a.b.c', `${header}.!!!.sig`, `${header}.${Buffer.from('[1]').toString('base64url')}.x`, `${header}.e30.x.y`, '..']) {
      expect(await v.verify(bad)).toMatchObject({ ok: false, reason: 'malformed_token' });
    }
  });

  it('caches a verified token until exp and checks the audience on every call', async () => {
    const metrics = new Metrics({ processMetrics: false });
    const v = await verifier({}, undefined, metrics);
    const token = await signToken(key, claims({ aud: ['gwadmin', 'vmcontroller'], exp: nowSeconds() + 100 }));
    expect((await v.verify(token)).ok).toBe(true);
    expect((await v.verify(token, 'vmcontroller')).ok).toBe(true);
    expect(await v.verify(token, 'billing')).toMatchObject({ ok: false, reason: 'wrong_audience' });
    expect(await counter(metrics, 'jwtauth_verified_token_cache_events_total', { event: 'hit' })).toBe(2);
    expect(await counter(metrics, 'jwtauth_verified_token_cache_events_total', { event: 'miss' })).toBe(1);
    offsetMs = 200_000; // past exp + skew: the cache must not outlive the token
    expect(await v.verify(token)).toMatchObject({ ok: false, reason: 'token_expired' });
  });

  it('with a lifetime limit too, caches a verified token and never serves it past its exp', async () => {
    const metrics = new Metrics({ processMetrics: false });
    const v = await verifier({ maxLifetimeSeconds: 600, clockSkewSeconds: 30 }, undefined, metrics);
    const token = await signToken(key, claims({ iat: nowSeconds(), exp: nowSeconds() + 100 }));
    expect((await v.verify(token)).ok).toBe(true);
    expect((await v.verify(token)).ok).toBe(true);
    expect(await counter(metrics, 'jwtauth_verified_token_cache_events_total', { event: 'hit' })).toBe(1);
    offsetMs = 140_000; // past exp + skew, well within iat + maxLifetimeSeconds
    expect(await v.verify(token)).toMatchObject({ ok: false, reason: 'token_expired' });
  });

  it('refetches the JWKS for an unknown kid at most once per cool-down', async () => {
    const v = await verifier({}, { url: server.url, cooldownSeconds: 30 });
    const hitsAfterStart = server.hits;
    const rotated = await makeSigningKey('ES256', 'rotated');
    server.setKeys(jwks(key, rotated));
    // Inside the cool-down since the start-up fetch: no refetch, unknown key.
    expect(await v.verify(await signToken(rotated, claims()))).toMatchObject({ ok: false, reason: 'unknown_key' });
    expect(server.hits).toBe(hitsAfterStart);
    offsetMs = 31_000;
    const [a, b] = await Promise.all([v.verify(await signToken(rotated, claims())), v.verify(await signToken(rotated, claims({ sub: 'bob' })))]);
    expect(a.ok && b.ok).toBe(true);
    expect(server.hits).toBe(hitsAfterStart + 1);
    const ghost = await makeSigningKey('ES256', 'ghost');
    expect(await v.verify(await signToken(ghost, claims()))).toMatchObject({ ok: false, reason: 'unknown_key' });
    expect(await v.verify(await signToken(ghost, claims({ sub: 'x' })))).toMatchObject({ ok: false, reason: 'unknown_key' });
    expect(server.hits).toBe(hitsAfterStart + 1);
  });

  it('stops trusting cached tokens of a key removed from the JWKS at the next refresh, not at their exp', async () => {
    const metrics = new Metrics({ processMetrics: false });
    const v = await verifier({}, { url: server.url, cooldownSeconds: 30 }, metrics);
    const rotated = await makeSigningKey('ES256', 'rotated');
    const old = await signToken(key, claims());
    expect((await v.verify(old)).ok).toBe(true);

    // A refresh that adds a key keeps the cached verification: a hit, no second signature check.
    server.setKeys(jwks(key, rotated));
    offsetMs = 31_000;
    expect((await v.verify(await signToken(rotated, claims()))).ok).toBe(true);
    const missesBefore = await counter(metrics, 'jwtauth_verified_token_cache_events_total', { event: 'miss' });
    expect((await v.verify(old)).ok).toBe(true);
    expect(await counter(metrics, 'jwtauth_verified_token_cache_events_total', { event: 'miss' })).toBe(missesBefore);

    // The old key is withdrawn (say, compromised): its tokens are refused from the next refresh on.
    server.setKeys(jwks(rotated));
    offsetMs = 62_000;
    expect(await v.verify(await signToken(await makeSigningKey('ES256', 'ghost'), claims()))).toMatchObject({ ok: false, reason: 'unknown_key' });
    expect(await v.verify(old)).toMatchObject({ ok: false, reason: 'unknown_key' });
  });

  it('keeps the last good keys while the JWKS URL is down', async () => {
    const metrics = new Metrics({ processMetrics: false });
    const v = await verifier({}, { url: server.url, cooldownSeconds: 1 }, metrics);
    server.setDown(true);
    offsetMs = 3_600_000; // long past any cache age jose would apply
    const unknown = await makeSigningKey('ES256', 'unknown');
    expect(await v.verify(await signToken(unknown, claims({ iat: nowSeconds() + 3600, exp: nowSeconds() + 3900 })))).toMatchObject({ ok: false, reason: 'unknown_key' });
    expect(await counter(metrics, 'jwtauth_jwks_refreshes_total', { issuer: 'auth', result: 'failure' })).toBe(1);
    const fresh = await signToken(key, claims({ iat: nowSeconds() + 3600, exp: nowSeconds() + 3900 }));
    expect((await v.verify(fresh)).ok).toBe(true);
    expect(v.ready()).toBe(true);
    expect(await counter(metrics, 'jwtauth_jwks_keys', { issuer: 'auth' })).toBe(1);
  });

  it('gives up on a JWKS fetch that never answers after limits.jwksFetchTimeoutMs and keeps the last good keys', async () => {
    const metrics = new Metrics({ processMetrics: false });
    const v = await verifier({}, { url: server.url, cooldownSeconds: 1 }, metrics); // fetch timeout 1 s
    server.setStalled(true);
    offsetMs = 1_500;
    const started = Date.now();
    const unknown = await makeSigningKey('ES256', 'unknown');
    expect(await v.verify(await signToken(unknown, claims()))).toMatchObject({ ok: false, reason: 'unknown_key' });
    const waited = Date.now() - started;
    expect(waited).toBeGreaterThanOrEqual(900);
    expect(waited).toBeLessThan(10_000);
    expect(await counter(metrics, 'jwtauth_jwks_refreshes_total', { issuer: 'auth', result: 'failure' })).toBe(1);
    expect((await v.verify(await signToken(key, claims()))).ok).toBe(true);
  });

  it('starts while the JWKS is down, denies with keys_unavailable, and recovers', async () => {
    server.setDown(true);
    const v = await verifier({}, { url: server.url, cooldownSeconds: 1 });
    expect(v.ready()).toBe(false);
    const token = await signToken(key, claims());
    expect(await v.verify(token)).toMatchObject({ ok: false, reason: 'keys_unavailable' });
    server.setDown(false);
    offsetMs = 1_500;
    expect((await v.verify(token)).ok).toBe(true);
    expect(v.ready()).toBe(true);
  });

  it('with required: false, is ready while that issuer has no keys, and still refuses its tokens keys_unavailable', async () => {
    server.setDown(true);
    const v = await verifier({ required: false }, { url: server.url, cooldownSeconds: 1 });
    expect(v.ready()).toBe(true);
    const token = await signToken(key, claims());
    expect(await v.verify(token)).toMatchObject({ ok: false, reason: 'keys_unavailable' });
    server.setDown(false);
    offsetMs = 1_500;
    expect((await v.verify(token)).ok).toBe(true);
  });

  it('types a user token from an issuer that mints both kinds by sub versus client_id (RFC 9068)', async () => {
    const v = await verifier({ subjectType: 'service', userSubjectType: 'user' });
    const service = await v.verify(await signToken(key, claims({ sub: 'gwadmin', client_id: 'gwadmin' })));
    const onBehalf = await v.verify(await signToken(key, claims({ sub: 'alice', client_id: 'gwadmin', act: { sub: 'gwadmin' } })));
    expect(service.ok && service.value.subjectType).toBe('service');
    expect(onBehalf.ok && onBehalf.value.subjectType).toBe('user');
    expect(onBehalf.ok && onBehalf.value.actor).toBe('gwadmin');
    const plain = await verifier({ subjectType: 'service' });
    const untyped = await plain.verify(await signToken(key, claims({ sub: 'alice', client_id: 'gwadmin' })));
    expect(untyped.ok && untyped.value.subjectType).toBe('service');
  });

  it('retries a JWKS that was down at start-up within seconds, not after the cool-down', async () => {
    server.setDown(true);
    const v = await verifier({}, { url: server.url });
    expect(v.ready()).toBe(false);
    setTimeout(() => server.setDown(false), 300).unref();
    const started = Date.now();
    while (!v.ready() && Date.now() - started < 5_000) await new Promise((resolve) => setTimeout(resolve, 25));
    expect(v.ready()).toBe(true);
    // The default cool-down is 30 s; the back-off from 250 ms gets there in about a second.
    expect(Date.now() - started).toBeLessThan(3_000);
  });

  it('loads a JWKS file relative to baseDir and refuses to start when the file is missing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'jwks-'));
    writeFileSync(join(dir, 'keys.json'), JSON.stringify(jwks(key)));
    const v = await createTokenVerifier(issuers({}, { file: 'keys.json' }), { metrics: new Metrics({ processMetrics: false }), logger, baseDir: dir, now });
    closers.push(() => v.close());
    expect((await v.verify(await signToken(key, claims()))).ok).toBe(true);
    await expect(
      createTokenVerifier(issuers({}, { file: 'missing.json' }), { metrics: new Metrics({ processMetrics: false }), logger, baseDir: dir }),
    ).rejects.toThrow(/auth/);
  });

  it('refuses a token without kid when several keys could match', async () => {
    const second = await makeSigningKey('ES256', 'second');
    server.setKeys(jwks(key, second));
    const v = await verifier();
    expect(await v.verify(await signToken(key, claims(), { kid: null }))).toMatchObject({ ok: false, reason: 'unknown_key' });
  });

  it('rejects none, HS256 and duplicate iss in config', () => {
    const base = { name: 'a', issuer: ISS, audience: 'x', kind: 'internal', jwks: { file: 'k.json' } };
    expect(() => issuersSchema.parse([{ ...base, algorithms: ['none'] }])).toThrow(/never accepted/);
    expect(() => issuersSchema.parse([{ ...base, algorithms: ['HS256'] }])).toThrow(/never accepted/);
    expect(() => issuersSchema.parse([base, { ...base, name: 'b' }])).toThrow(/duplicate iss/);
  });

  it('makes a repeated token cost a hash lookup instead of a signature check', async () => {
    const v = await verifier();
    const tokens = await Promise.all(Array.from({ length: 300 }, (_, i) => signToken(key, claims({ sub: `u${i}` }))));
    let started = performance.now();
    for (const token of tokens) expect((await v.verify(token)).ok).toBe(true);
    const uncachedUs = ((performance.now() - started) * 1000) / tokens.length;
    started = performance.now();
    for (let round = 0; round < 10; round++) for (const token of tokens) await v.verify(token);
    const cachedUs = ((performance.now() - started) * 1000) / (tokens.length * 10);
    console.log(`verify ES256: ${uncachedUs.toFixed(1)} µs uncached, ${cachedUs.toFixed(1)} µs cached`);
    expect(cachedUs).toBeLessThan(uncachedUs / 3);
  });
});
