/**
 * Which published keys may verify a token: each key is bound to one allowed algorithm that fits
 * its type and curve (its own `alg`, or the only allowed one that fits), and keys that are private,
 * symmetric, for encryption, not for verifying, unimportable or a repeated kid never sign anything.
 * Judged by whether a token signed with each key is accepted.
 */
import { tmpdir } from 'node:os';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { exportJWK } from 'jose';
import { issuersSchema } from '../../src/identity/config.js';
import { createTokenVerifier } from '../../src/identity/token-verifier.js';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import { JwksServer, makeSigningKey, nowSeconds, signToken } from '../../dev/jwt-fixtures.js';
import type { SigningKey } from '../../dev/jwt-fixtures.js';

const ISS = 'https://auth.example';
let server: JwksServer;
const closers: Array<() => Promise<void>> = [];

beforeEach(async () => {
  server = await new JwksServer().start({ keys: [] });
});
afterEach(async () => {
  while (closers.length) await closers.pop()!();
  await server.stop();
});

async function verifier(algorithms: string[]) {
  const issuers = issuersSchema.parse([{ name: 'auth', issuer: ISS, audience: 'gw', kind: 'external', jwks: { url: server.url, cooldownSeconds: 30 }, algorithms }]);
  const v = await createTokenVerifier(issuers, { metrics: new Metrics({ processMetrics: false }), logger: createLogger({ level: 'silent' }), baseDir: tmpdir(), fetchTimeoutMs: 1000 });
  closers.push(() => v.close());
  return v;
}

const claims = () => ({ iss: ISS, aud: 'gw', sub: 'alice', iat: nowSeconds(), exp: nowSeconds() + 300 });

/** Whether a token signed with `key` (header alg = the key's own) is accepted, or why not. */
async function accepts(v: Awaited<ReturnType<typeof verifier>>, key: SigningKey, kid: string | null = key.kid): Promise<true | string> {
  const result = await v.verify(await signToken(key, claims(), { kid }));
  return result.ok ? true : result.reason;
}

/** The key as published, with `changes` applied (undefined deletes a member). */
function published(key: SigningKey, changes: Record<string, unknown>): Record<string, unknown> {
  const jwk: Record<string, unknown> = { ...key.publicJwk, ...changes };
  for (const [name, value] of Object.entries(changes)) if (value === undefined) delete jwk[name];
  return jwk;
}

describe('JWKS key binding', () => {
  it('verifies with EC keys on each curve, Ed25519 and RSA-PSS, each under its own algorithm', async () => {
    const keys = await Promise.all(['ES256', 'ES384', 'ES512', 'EdDSA', 'PS256', 'RS256'].map((alg) => makeSigningKey(alg)));
    server.setKeys({ keys: keys.map((k) => k.publicJwk) });
    const v = await verifier(['ES256', 'ES384', 'ES512', 'EdDSA', 'PS256', 'RS256']);
    for (const key of keys) expect(await accepts(v, key), key.alg).toBe(true);
  });

  it('binds a key without alg to the one allowed algorithm its type and curve fit', async () => {
    const es384 = await makeSigningKey('ES384', 'p384', false);
    const ed = await makeSigningKey('EdDSA', 'ed', false);
    const es512 = await makeSigningKey('ES512', 'p521', false);
    server.setKeys({ keys: [es384.publicJwk, ed.publicJwk, es512.publicJwk] });
    const v = await verifier(['ES256', 'ES384', 'ES512', 'EdDSA']);
    expect(await accepts(v, es384)).toBe(true);
    expect(await accepts(v, ed)).toBe(true);
    expect(await accepts(v, es512)).toBe(true);
  });

  it('never binds a key to an algorithm its curve or type does not fit, whatever alg it is published with', async () => {
    const p256 = await makeSigningKey('ES256', 'p256');
    const p384 = await makeSigningKey('ES384', 'p384');
    const p521 = await makeSigningKey('ES512', 'p521');
    const ed = await makeSigningKey('EdDSA', 'ed');
    const rsa = await makeSigningKey('RS256', 'rsa');
    const good = await makeSigningKey('ES256', 'good');
    server.setKeys({
      keys: [
        published(p256, { alg: 'ES384' }),
        published(p384, { alg: 'ES512' }),
        published(p521, { alg: 'ES256' }),
        published(ed, { alg: 'ES256' }),
        published(rsa, { alg: 'ES256' }),
        published(good, { kty: 'XYZ', kid: 'odd-type' }),
        good.publicJwk,
      ],
    });
    const v = await verifier(['ES256', 'ES384', 'ES512', 'EdDSA', 'RS256']);
    expect(await accepts(v, good)).toBe(true);
    for (const key of [p256, p384, p521, ed, rsa]) expect(await accepts(v, key), key.kid).toBe('unknown_key');
  });

  it('leaves out a key without alg that no allowed algorithm fits, or that two fit', async () => {
    const ed = await makeSigningKey('EdDSA', 'ed', false);
    const p384 = await makeSigningKey('ES384', 'p384', false);
    const rsa = await makeSigningKey('RS256', 'rsa', false);
    const good = await makeSigningKey('ES256', 'good');
    server.setKeys({ keys: [ed.publicJwk, p384.publicJwk, rsa.publicJwk, good.publicJwk] });
    const v = await verifier(['ES256', 'RS256', 'PS256']);
    expect(await accepts(v, good)).toBe(true);
    expect(await accepts(v, ed)).toBe('disallowed_algorithm');
    expect(await accepts(v, p384)).toBe('disallowed_algorithm');
    expect(await accepts(v, rsa)).toBe('unknown_key');
  });

  it('never uses private, symmetric, encryption-only or non-verifying keys, nor a second key under a kid already seen', async () => {
    const keys = await Promise.all(['priv', 'enc', 'wrap', 'dup', 'good'].map((kid) => makeSigningKey('ES256', kid)));
    const [priv, enc, wrap, dup, good] = keys as [SigningKey, SigningKey, SigningKey, SigningKey, SigningKey];
    const privateJwk = { ...(await exportJWK(priv.privateKey)), kid: 'priv', alg: 'ES256' };
    const impostor = await makeSigningKey('ES256', 'dup');
    server.setKeys({
      keys: [
        privateJwk,
        { kty: 'oct', k: 'c2VjcmV0', kid: 'oct', alg: 'ES256' },
        published(enc, { use: 'enc' }),
        published(wrap, { key_ops: ['wrapKey'] }),
        dup.publicJwk,
        impostor.publicJwk,
        published(good, { use: 'sig', key_ops: ['verify'] }),
      ],
    });
    const v = await verifier(['ES256']);
    expect(await accepts(v, good)).toBe(true);
    expect(await accepts(v, dup)).toBe(true);
    expect(await accepts(v, impostor)).toBe('bad_signature');
    for (const key of [priv, enc, wrap]) expect(await accepts(v, key), key.kid).toBe('unknown_key');
  });

  it('skips entries that are not keys or do not import, and serves the rest', async () => {
    const good = await makeSigningKey('ES256', 'good');
    server.setKeys({ keys: [null, 'key', [1], { kty: 'EC', crv: 'P-256', kid: 'broken', alg: 'ES256', x: 'AA', y: 'AA' }, good.publicJwk] as never });
    const v = await verifier(['ES256']);
    expect(await accepts(v, good)).toBe(true);
  });

  it('without a kid, uses the one key bound to the token algorithm', async () => {
    const es = await makeSigningKey('ES256', 'es');
    const rsa = await makeSigningKey('RS256', 'rsa');
    server.setKeys({ keys: [es.publicJwk, rsa.publicJwk] });
    const v = await verifier(['ES256', 'RS256']);
    expect(await accepts(v, es, null)).toBe(true);
    expect(await accepts(v, rsa, null)).toBe(true);
    const ps = await makeSigningKey('PS256', 'ps');
    expect(await accepts(v, ps, null)).toBe('disallowed_algorithm');
  });

  it('refuses to start when the JWKS CA bundle cannot be read, naming the issuer', async () => {
    const issuers = issuersSchema.parse([{ name: 'auth', issuer: ISS, audience: 'gw', kind: 'external', jwks: { url: 'https://127.0.0.1:1/jwks', caFile: 'no-such-ca.pem' } }]);
    await expect(
      createTokenVerifier(issuers, { metrics: new Metrics({ processMetrics: false }), logger: createLogger({ level: 'silent' }), baseDir: tmpdir(), fetchTimeoutMs: 1000 }),
    ).rejects.toThrow(/^issuer auth: jwks\.caFile: .*no-such-ca\.pem/);
  });
});
