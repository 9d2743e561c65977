/**
 * The exchange token source against a real OAuth 2.0 server (oidc-provider) over real mutual TLS.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { pino } from 'pino';
import type { TokenResult } from '../../src/core/ports.js';
import { Metrics } from '../../src/observability/metrics.js';
import type { TokensConfig } from '../../src/tokens/config.js';
import { createTokenSource } from '../../src/tokens/token-source.js';
import type { OutboundTokenSource } from '../../src/tokens/token-source.js';
import { createTestPki } from '../support/certs.js';
import type { TestPki } from '../support/certs.js';
import { startOAuthServer } from '../support/oauth-server.js';
import type { OAuthServer } from '../support/oauth-server.js';
import { exchangeTokensConfig } from '../support/exchange-source.js';

let pki: TestPki;
let server: OAuthServer;
const sources: OutboundTokenSource[] = [];

beforeAll(async () => {
  pki = createTestPki(['gwadmin', 'intruder']);
  server = await startOAuthServer({ pki, clients: ['gwadmin'], audiences: ['vmcontroller', 'gwadmin'], accessTokenTtlSeconds: 300 });
});
afterAll(async () => {
  await Promise.all(sources.map((source) => source.close()));
  await server?.close();
  pki?.remove();
});

function config(overrides: { client?: string; caFile?: string; timeoutMs?: number } = {}): NonNullable<TokensConfig> {
  return exchangeTokensConfig(pki, server.tokenEndpoint, {
    ...(overrides.client ? { client: overrides.client } : {}),
    ...(overrides.caFile ? { caFile: overrides.caFile } : {}),
    extra: { audienceParameter: 'resource', timeoutMs: overrides.timeoutMs ?? 2000 },
  });
}

async function source(
  overrides: Parameters<typeof config>[0] & { serviceName?: string; now?: () => number; uncached?: boolean } = {},
): Promise<OutboundTokenSource> {
  const created = await createTokenSource(config(overrides), {
    serviceName: overrides.serviceName ?? overrides.client ?? 'gwadmin',
    metrics: new Metrics({ processMetrics: false }),
    logger: pino({ level: 'silent' }),
    baseDir: pki.dir,
    uncached: overrides.uncached ?? true,
    ...(overrides.now ? { now: overrides.now } : {}),
  });
  sources.push(created);
  return created;
}

function tokenOf(result: TokenResult): string {
  if (!result.ok) throw new Error(`expected a token, got ${result.reason}: ${result.detail ?? ''}`);
  return result.value.token;
}

async function verifyIssued(token: string, audience = 'vmcontroller') {
  return jwtVerify(token, createLocalJWKSet(await server.jwks()), { issuer: server.issuer, audience, typ: 'at+jwt', algorithms: ['ES256'] });
}

describe('exchange token source over mTLS', () => {
  it('gets a service token with client_credentials, authenticated by the client certificate', async () => {
    const tokens = await source();
    const sentAt = Math.floor(Date.now() / 1000);
    const result = await tokens.issue({ kind: 'service', audience: 'vmcontroller' });
    const answeredAt = Math.ceil(Date.now() / 1000);
    const { payload, protectedHeader } = await verifyIssued(tokenOf(result));
    expect(protectedHeader).toMatchObject({ alg: 'ES256', typ: 'at+jwt' });
    expect(payload).toMatchObject({ aud: 'vmcontroller', client_id: 'gwadmin', sub: 'gwadmin' });
    // Never cached past its exp; counted from when the request left, so at most the round trip
    // (rounded to whole seconds) earlier than the server's exp.
    const expiresAt = result.ok ? result.value.expiresAt : NaN;
    expect(expiresAt).toBeLessThanOrEqual(payload.exp!);
    expect(expiresAt).toBeGreaterThanOrEqual(payload.exp! - (answeredAt - sentAt));
  });

  it('exchanges a user token (RFC 8693) for one naming the user, with this service as actor', async () => {
    const tokens = await source();
    const userToken = await server.externalUserToken('alice');
    const result = await tokens.issue({ kind: 'exchange', audience: 'vmcontroller', subjectToken: userToken, subjectTokenFingerprint: 'h', subject: 'alice' });
    const { payload } = await verifyIssued(tokenOf(result));
    expect(payload).toMatchObject({ sub: 'alice', aud: 'vmcontroller', act: { sub: 'gwadmin' }, client_id: 'gwadmin' });
  });

  it('turns invalid_grant (an expired user token) into token_exchange_rejected, without echoing the token', async () => {
    const tokens = await source();
    const expired = await server.externalUserToken('alice', -60);
    const result = await tokens.issue({ kind: 'exchange', audience: 'vmcontroller', subjectToken: expired, subjectTokenFingerprint: 'h', subject: 'alice' });
    expect(result).toMatchObject({ ok: false, reason: 'token_exchange_rejected' });
    expect(!result.ok && result.detail).toContain('invalid_grant');
    expect(JSON.stringify(result)).not.toContain(expired.split('.')[1]);
  });

  it('turns invalid_target (an audience the token service does not know) into token_exchange_invalid_target', async () => {
    const tokens = await source();
    const result = await tokens.issue({ kind: 'service', audience: 'billing' });
    expect(result).toMatchObject({ ok: false, reason: 'token_exchange_invalid_target' });
  });

  it('names the problem when the client certificate is not on the token service’s list', async () => {
    const tokens = await source({ client: 'intruder' });
    const result = await tokens.issue({ kind: 'service', audience: 'vmcontroller' });
    expect(result).toMatchObject({ ok: false, reason: 'token_exchange_rejected' });
    expect(!result.ok && result.detail).toMatch(/invalid_client/);
  });

  it('reports a TLS failure when the token service certificate does not chain to the configured CA', async () => {
    const tokens = await source({ caFile: pki.otherCaFile });
    const result = await tokens.issue({ kind: 'service', audience: 'vmcontroller' });
    expect(result).toMatchObject({ ok: false, reason: 'token_source_tls_error' });
  });

  it('gives up after timeoutMs when the token service does not answer', async () => {
    const tokens = await source({ timeoutMs: 300 });
    server.stall(true);
    try {
      const started = Date.now();
      const result = await tokens.issue({ kind: 'service', audience: 'vmcontroller' });
      expect(result).toMatchObject({ ok: false, reason: 'token_source_timeout' });
      expect(Date.now() - started).toBeLessThan(1500);
    } finally {
      server.stall(false);
    }
  });

  it('refuses on-behalf-of, which needs the mint source', async () => {
    const tokens = await source();
    expect(await tokens.issue({ kind: 'on_behalf_of', audience: 'vmcontroller', user: 'alice', userType: 'user' })).toMatchObject({
      ok: false,
      reason: 'token_source_error',
    });
  });
});

describe('cached exchange tokens while the issuer is down', () => {
  it('serve the cached token until exp minus skew, then deny with a retryable reason, and recover', async () => {
    const clock = { now: Date.now() };
    const tokens = await source({ uncached: false, now: () => clock.now });
    const issued = await tokens.issue({ kind: 'service', audience: 'vmcontroller' });
    const first = tokenOf(issued);
    // The expiry the source recorded: counted from when the request left, so it can be a second
    // before the JWT's own exp (asserted above); the cache serves until this, minus the skew.
    const exp = issued.ok ? issued.value.expiresAt : 0;
    const before = server.requests;

    await server.stop();
    clock.now += 200_000; // past refresh time: a background refresh fails
    expect(tokenOf(await tokens.issue({ kind: 'service', audience: 'vmcontroller' }))).toBe(first);
    await new Promise((resolve) => setTimeout(resolve, 100));
    clock.now = (exp - 30) * 1000 - 1; // last servable millisecond
    expect(tokenOf(await tokens.issue({ kind: 'service', audience: 'vmcontroller' }))).toBe(first);

    clock.now = (exp - 30) * 1000;
    const denied = await tokens.issue({ kind: 'service', audience: 'vmcontroller' });
    expect(denied).toMatchObject({ ok: false, reason: 'token_source_unavailable' });
    expect(server.requests).toBe(before); // nothing reached the stopped server

    // Real time must move a second on, or the new token's exp (whole seconds) equals the old one's
    // and is, on the test clock, just as close to expiry.
    await new Promise((resolve) => setTimeout(resolve, 1100));
    await server.start();
    const fresh = tokenOf(await tokens.issue({ kind: 'service', audience: 'vmcontroller' }));
    expect(fresh).not.toBe(first);
    await verifyIssued(fresh);
  });
});
