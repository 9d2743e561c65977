/**
 * Finding the key for a token: by kid, else the one key of the token's algorithm; a kid bound to
 * another algorithm is refused without a refetch; an unknown kid refetches the JWKS no sooner than
 * the cool-down allows, to the millisecond (the verifier's clock is injected). A caller must not be
 * able to make the sidecar fetch the issuer's JWKS at will.
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
const COOLDOWN_S = 30;
const START_MS = Date.now();
let server: JwksServer;
let ec: SigningKey;
let rsa: SigningKey;
let clockMs = START_MS;
const closers: Array<() => Promise<void>> = [];

async function verifier() {
  const issuers = issuersSchema.parse([
    { name: 'auth', issuer: ISS, audience: 'gwadmin', kind: 'external', subjectType: 'user', jwks: { url: server.url, cooldownSeconds: COOLDOWN_S }, algorithms: ['ES256', 'RS256'] },
  ]);
  const v = await createTokenVerifier(issuers, { metrics: new Metrics({ processMetrics: false }), logger: createLogger({ level: 'silent' }), baseDir: tmpdir(), fetchTimeoutMs: 1000, now: () => clockMs });
  closers.push(() => v.close());
  return v;
}

const seconds = () => Math.floor(clockMs / 1000);
const claims = (sub = 'alice') => ({ iss: ISS, aud: 'gwadmin', sub, iat: seconds(), exp: seconds() + 3600 });

beforeEach(async () => {
  clockMs = START_MS;
  ec = await makeSigningKey('ES256', 'ec-1');
  rsa = await makeSigningKey('RS256', 'rsa-1');
  server = await new JwksServer().start(jwks(rsa, ec));
});
afterEach(async () => {
  while (closers.length > 0) await closers.pop()!();
  await server.stop();
});

describe('the key for a token', () => {
  it('without a kid, is the one key of the token algorithm, whatever other keys the set holds', async () => {
    const v = await verifier();
    expect(await v.verify(await signToken(ec, claims(), { kid: null }))).toMatchObject({ ok: true });
    expect(await v.verify(await signToken(rsa, claims(), { kid: null }))).toMatchObject({ ok: true });
  });

  it('with a kid bound to another algorithm, is refused, naming both, and never refetched', async () => {
    const v = await verifier();
    const hits = server.hits;
    clockMs = START_MS + COOLDOWN_S * 1000 * 10;
    expect(await v.verify(await signToken(ec, claims(), { kid: 'rsa-1' }))).toEqual({ ok: false, reason: 'disallowed_algorithm', detail: 'key rsa-1 is bound to RS256, token says ES256' });
    expect(server.hits).toBe(hits);
  });

  it('with an unknown kid, is looked for again exactly once the cool-down since the last fetch has passed', async () => {
    const v = await verifier();
    const hits = server.hits;
    const rotated = await makeSigningKey('ES256', 'rotated');
    server.setKeys(jwks(rsa, ec, rotated));
    clockMs = START_MS + COOLDOWN_S * 1000 - 1;
    // The start-up fetch read the clock at START_MS or later, so a millisecond short is always inside the cool-down.
    expect(await v.verify(await signToken(rotated, claims()))).toEqual({ ok: false, reason: 'unknown_key', detail: 'kid "rotated" not in JWKS' });
    expect(server.hits).toBe(hits);
    clockMs = START_MS + COOLDOWN_S * 1000;
    expect(await v.verify(await signToken(rotated, claims('bob')))).toMatchObject({ ok: true });
    expect(server.hits).toBe(hits + 1);
  });

  it('names an unknown kid by at most 64 characters', async () => {
    const v = await verifier();
    const long = `k${'x'.repeat(100)}`;
    const stranger = await makeSigningKey('ES256', long);
    expect(await v.verify(await signToken(stranger, claims()))).toEqual({ ok: false, reason: 'unknown_key', detail: `kid ${JSON.stringify(long.slice(0, 64))} not in JWKS` });
  });

  it('without a kid and no key of its algorithm, is unknown', async () => {
    server.setKeys(jwks(rsa));
    const v = await verifier();
    expect(await v.verify(await signToken(ec, claims(), { kid: null }))).toEqual({ ok: false, reason: 'unknown_key', detail: 'no ES256 key without kid' });
  });
});
