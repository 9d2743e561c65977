/**
 * The checks an introspected (opaque) token's claims get, which are those a JWT's claims get:
 * time bounds with the issuer's clock skew, iss, lifetime, required claims, subject and audience.
 * Against a plain-HTTP introspection endpoint on 127.0.0.1 whose answers each test scripts (the
 * real oidc-provider over TLS is in test/integration/introspection.test.ts).
 */
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { issuersSchema } from '../../src/identity/config.js';
import { createTokenVerifier } from '../../src/identity/token-verifier.js';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';

const ISS = 'https://corp.example';
const NOW_S = 1_900_000_000;
const SECRET_ENV = 'JWTAUTH_TEST_INTROSPECTION_SECRET';

interface Scripted {
  status?: number;
  body: string;
}

/** Answers by token: what the endpoint says about each one. */
const answers = new Map<string, Scripted>();
const requests: URLSearchParams[] = [];
const authorizations: Array<string | undefined> = [];
let server: Server;
let endpoint: string;
const closers: Array<() => Promise<void>> = [];

beforeAll(async () => {
  process.env[SECRET_ENV] = 'a secret';
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
      requests.push(form);
      authorizations.push(req.headers.authorization);
      const answer = answers.get(form.get('token') ?? '') ?? { body: '{"active":false}' };
      res.writeHead(answer.status ?? 200, { 'content-type': 'application/json' }).end(answer.body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}/introspect`;
});
afterAll(async () => {
  delete process.env[SECRET_ENV];
  await new Promise<void>((resolve) => server.close(() => resolve()));
});
afterEach(async () => {
  while (closers.length) await closers.pop()!();
  answers.clear();
  requests.length = 0;
  authorizations.length = 0;
});

let seq = 0;
/** A fresh opaque token whose introspection answer is `claims` (active unless they say otherwise). */
function opaque(claims: Record<string, unknown>, status?: number): string {
  const token = `opaque-${++seq}`;
  answers.set(token, { body: JSON.stringify({ active: true, ...claims }), ...(status !== undefined ? { status } : {}) });
  return token;
}

function raw(body: string, status?: number): string {
  const token = `opaque-${++seq}`;
  answers.set(token, { body, ...(status !== undefined ? { status } : {}) });
  return token;
}

let nowMs = NOW_S * 1000;

async function verifier(overrides: Record<string, unknown> = {}, introspection: Record<string, unknown> = {}) {
  nowMs = NOW_S * 1000;
  const issuers = issuersSchema.parse([
    {
      name: 'corp',
      issuer: ISS,
      audience: 'gw-api',
      kind: 'external',
      subjectType: 'service',
      userSubjectType: 'user',
      clockSkewSeconds: 30,
      introspection: { endpoint, clientId: 'gw', clientSecret: { env: SECRET_ENV }, ...introspection },
      ...overrides,
    },
  ]);
  const v = await createTokenVerifier(issuers, { metrics: new Metrics({ processMetrics: false }), logger: createLogger({ level: 'silent' }), baseDir: tmpdir(), now: () => nowMs });
  closers.push(() => v.close());
  return v;
}

const good = (extra: Record<string, unknown> = {}) => ({ iss: ISS, sub: 'alice', client_id: 'app', aud: 'gw-api', iat: NOW_S - 10, exp: NOW_S + 300, ...extra });

describe('introspected tokens: the claim checks of a JWT', () => {
  it('refuses a token whose nbf is later than now plus the clock skew, and accepts it within the skew', async () => {
    const v = await verifier();
    expect(await v.verify(opaque(good({ nbf: NOW_S + 31 })))).toMatchObject({ ok: false, reason: 'token_not_yet_valid' });
    expect(await v.verify(opaque(good({ nbf: NOW_S + 3600 })))).toMatchObject({ ok: false, reason: 'token_not_yet_valid' });
    expect(await v.verify(opaque(good({ nbf: NOW_S + 30 })))).toMatchObject({ ok: true, value: { subject: 'alice' } });
    expect(await v.verify(opaque(good({ nbf: NOW_S - 60 })))).toMatchObject({ ok: true });
  });

  it('refuses an expired token (exp plus the skew is now or earlier) and a token without a numeric exp', async () => {
    const v = await verifier();
    expect(await v.verify(opaque(good({ exp: NOW_S - 30 })))).toMatchObject({ ok: false, reason: 'token_expired' });
    expect(await v.verify(opaque(good({ exp: NOW_S - 29 })))).toMatchObject({ ok: true, value: { expiresAt: NOW_S - 29 } });
    expect(await v.verify(opaque(good({ exp: undefined })))).toMatchObject({ ok: false, reason: 'invalid_claim' });
    expect(await v.verify(opaque(good({ exp: String(NOW_S + 300) })))).toMatchObject({ ok: false, reason: 'invalid_claim' });
  });

  it('refuses an answer that names another iss, and accepts one that names none', async () => {
    const v = await verifier();
    expect(await v.verify(opaque(good({ iss: 'https://other.example' })))).toMatchObject({ ok: false, reason: 'unknown_issuer' });
    expect(await v.verify(opaque(good({ iss: undefined })))).toMatchObject({ ok: true, value: { iss: ISS, issuer: 'corp' } });
  });

  it('enforces maxLifetimeSeconds both as exp - iat and as age, and needs iat for it', async () => {
    const v = await verifier({ maxLifetimeSeconds: 600 });
    expect(await v.verify(opaque(good({ iat: NOW_S - 10, exp: NOW_S + 590 })))).toMatchObject({ ok: true });
    expect(await v.verify(opaque(good({ iat: NOW_S - 10, exp: NOW_S + 591 })))).toMatchObject({ ok: false, reason: 'token_too_old' });
    // Issued 625 s ago with 600 s of lifetime: not expired within the skew, so not too old either.
    expect(await v.verify(opaque(good({ iat: NOW_S - 625, exp: NOW_S - 25 })))).toMatchObject({ ok: true });
    expect(await v.verify(opaque(good({ iat: NOW_S - 631, exp: NOW_S + 1 })))).toMatchObject({ ok: false, reason: 'token_too_old' });
    expect(await v.verify(opaque(good({ iat: undefined })))).toMatchObject({ ok: false, reason: 'missing_claim' });
    // Without the limit, iat is not needed.
    expect(await (await verifier()).verify(opaque(good({ iat: undefined })))).toMatchObject({ ok: true });
  });

  it('requires the configured claims', async () => {
    const v = await verifier({ requiredClaims: ['scope'] });
    expect(await v.verify(opaque(good()))).toMatchObject({ ok: false, reason: 'missing_claim', detail: 'missing scope' });
    expect(await v.verify(opaque(good({ scope: 'vm.read' })))).toMatchObject({ ok: true });
  });

  it('takes sub as the subject, else client_id (a client-credentials token), and refuses an answer with neither', async () => {
    const v = await verifier();
    expect(await v.verify(opaque(good()))).toMatchObject({ ok: true, value: { subject: 'alice', subjectType: 'user' } });
    expect(await v.verify(opaque(good({ sub: undefined })))).toMatchObject({ ok: true, value: { subject: 'app', subjectType: 'service' } });
    expect(await v.verify(opaque(good({ sub: '' })))).toMatchObject({ ok: true, value: { subject: 'app' } });
    expect(await v.verify(opaque(good({ sub: undefined, client_id: undefined })))).toMatchObject({ ok: false, reason: 'invalid_claim' });
    expect(await v.verify(opaque(good({ sub: 42, client_id: '' })))).toMatchObject({ ok: false, reason: 'invalid_claim' });
  });

  it('matches the audience whole; an answer without aud counts as for the issuer audience; a non-string aud is refused', async () => {
    const v = await verifier();
    expect(await v.verify(opaque(good({ aud: 'gw-api-staging' })))).toMatchObject({ ok: false, reason: 'wrong_audience' });
    expect(await v.verify(opaque(good({ aud: ['billing', 'gw-api'] })))).toMatchObject({ ok: true, value: { audience: ['billing', 'gw-api'] } });
    expect(await v.verify(opaque(good({ aud: undefined })))).toMatchObject({ ok: true, value: { audience: ['gw-api'] } });
    expect(await v.verify(opaque(good({ aud: undefined })), 'billing')).toMatchObject({ ok: false, reason: 'wrong_audience' });
    expect(await v.verify(opaque(good({ aud: 7 })))).toMatchObject({ ok: false, reason: 'wrong_audience' });
    expect(await v.verify(opaque(good({ aud: ['gw-api', 7] })))).toMatchObject({ ok: false, reason: 'wrong_audience' });
  });

  it('keeps every claim but active in the identity', async () => {
    const v = await verifier();
    const result = await v.verify(opaque(good({ scope: 'vm.read' })));
    expect(result.ok && result.value.claims).toEqual({ iss: ISS, sub: 'alice', client_id: 'app', aud: 'gw-api', iat: NOW_S - 10, exp: NOW_S + 300, scope: 'vm.read' });
  });
});

describe('introspected tokens: the endpoint', () => {
  it('authenticates with HTTP Basic over the form-encoded client id and secret, and asks about an access token', async () => {
    const v = await verifier({}, { clientId: 'gw client:1' });
    const token = opaque(good());
    expect((await v.verify(token)).ok).toBe(true);
    expect(authorizations).toEqual([`Basic ${Buffer.from('gw+client%3A1:a+secret').toString('base64')}`]);
    expect(requests[0]?.get('token')).toBe(token);
    expect(requests[0]?.get('token_type_hint')).toBe('access_token');
    // Basic authentication names the client; the form does not repeat it.
    expect(requests[0]?.has('client_id')).toBe(false);
  });

  it('is unavailable (503 keys_unavailable, never an allow) for an answer it cannot use, and does not cache it', async () => {
    const v = await verifier();
    const cases: Array<[string, RegExp]> = [
      [raw('{"active":true}', 401), /refused this sidecar's client credentials \(HTTP 401\)/],
      [raw('{"active":true}', 403), /refused this sidecar's client credentials \(HTTP 403\)/],
      [raw(JSON.stringify({ active: true, ...good() }), 500), /^introspection endpoint answered HTTP 500$/],
      [raw('not json'), /^introspection answer is not JSON$/],
      [raw('[1]'), /^introspection answer is not a JSON object$/],
      [raw('null'), /^introspection answer is not a JSON object$/],
      [raw('{"active":"true"}'), /^introspection answer has no boolean "active"$/],
      [raw(JSON.stringify({ active: true, pad: 'x'.repeat(65 * 1024) })), /^introspection answer larger than 64 KiB$/],
    ];
    for (const [token, detail] of cases) {
      const result = await v.verify(token);
      expect(result).toMatchObject({ ok: false, reason: 'keys_unavailable' });
      expect(result.ok ? '' : result.detail).toMatch(detail);
    }
    const asked = requests.length;
    await v.verify(cases[3]![0]);
    expect(requests.length).toBe(asked + 1);
  });

  it('caches an active answer until the token expires, at most cacheMaxSeconds, and an inactive one for cacheMaxSeconds', async () => {
    const v = await verifier({}, { cacheMaxSeconds: 60 });
    const shortLived = opaque(good({ exp: NOW_S + 20 }));
    const longLived = opaque(good({ exp: NOW_S + 3600 }));
    const inactive = raw('{"active":false}');
    for (const token of [shortLived, longLived, inactive]) await v.verify(token);
    expect(requests).toHaveLength(3);
    nowMs += 19_000;
    for (const token of [shortLived, longLived, inactive]) await v.verify(token);
    expect(requests).toHaveLength(3);
    nowMs += 2_000;
    // Past the short token's exp: asked again (and now refused by our own clock only after the skew).
    expect(await v.verify(shortLived)).toMatchObject({ ok: true });
    expect(requests).toHaveLength(4);
    nowMs += 40_000;
    expect(await v.verify(longLived)).toMatchObject({ ok: true });
    expect(await v.verify(inactive)).toMatchObject({ ok: false, reason: 'token_inactive' });
    expect(requests).toHaveLength(6);
  });

  it('refuses to start when the client secret cannot be read, naming the issuer', async () => {
    await expect(verifier({}, { clientSecret: { env: 'JWTAUTH_TEST_NO_SUCH_SECRET' } })).rejects.toThrow(/^issuer corp: introspection: .*JWTAUTH_TEST_NO_SUCH_SECRET/);
  });

  it('asks every time with cacheMaxSeconds 0', async () => {
    const v = await verifier({}, { cacheMaxSeconds: 0 });
    const token = opaque(good());
    await v.verify(token);
    await v.verify(token);
    expect(requests).toHaveLength(2);
  });
});
