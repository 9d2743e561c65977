/**
 * Guarantee: an opaque bearer token is checked by RFC 7662 introspection at the one issuer that
 * introspects, authenticated by HTTP Basic or by client certificate; an active answer becomes the
 * same VerifiedToken a JWT does, inactive or expired is 401, an endpoint that cannot answer is 503
 * (never an allow), and answers are cached by token hash and coalesced. Against a real
 * oidc-provider over HTTPS with a private CA, counting the introspection requests it receives.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, validateConfig } from '../../src/config/load.js';
import { issuersSchema } from '../../src/identity/config.js';
import { createTokenVerifier } from '../../src/identity/token-verifier.js';
import { preflight } from '../../src/lifecycle/preflight.js';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import { createTestPki } from '../support/certs.js';
import type { TestPki } from '../support/certs.js';
import { startOAuthServer } from '../support/oauth-server.js';
import type { OAuthServer } from '../support/oauth-server.js';

const INTROSPECTION_PATH = '/token/introspection';
const SECRET_CLIENT = 'jwtauth-gw';
const SECRET = 'a secret: with spaces & symbols';
let pki: TestPki;
let server: OAuthServer;
let secretFile: string;
const closers: (() => Promise<void> | void)[] = [];
const silent = createLogger({ level: 'silent' });

beforeAll(async () => {
  pki = createTestPki(['gwadmin']);
  server = await startOAuthServer({ pki, clients: ['gwadmin'], audiences: ['vmcontroller'], secretClients: { [SECRET_CLIENT]: SECRET } });
  secretFile = join(pki.dir, 'introspection-secret');
  writeFileSync(secretFile, `${SECRET}\n`);
});
afterAll(async () => {
  for (const close of closers.splice(0).reverse()) await close();
  await server?.close();
  pki?.remove();
});

type Auth = 'basic' | 'mtls' | 'wrong-secret';

function introspectingIssuer(auth: Auth = 'basic', extra: Record<string, unknown> = {}) {
  const client = pki.clients.gwadmin;
  if (!client) throw new Error('no client certificate');
  const credentials =
    auth === 'mtls'
      ? { clientId: 'gwadmin', clientCertFile: client.certFile, clientKey: { file: client.keyFile } }
      : { clientId: SECRET_CLIENT, clientSecret: { file: auth === 'basic' ? secretFile : join(pki.dir, 'wrong-secret') } };
  if (auth === 'wrong-secret') writeFileSync(join(pki.dir, 'wrong-secret'), 'not the secret');
  return {
    name: 'corp',
    issuer: server.issuer,
    audience: 'gw-api',
    kind: 'external',
    userSubjectType: 'user',
    subjectType: 'service',
    introspection: { endpoint: server.introspectionEndpoint, caFile: pki.caFile, cacheMaxSeconds: 60, ...credentials, ...extra },
  };
}

async function verifierFor(issuer: Record<string, unknown>, now?: () => number) {
  const metrics = new Metrics({ processMetrics: false });
  const verifier = await createTokenVerifier(issuersSchema.parse([issuer]), { metrics, logger: silent, baseDir: pki.dir, ...(now ? { now } : {}) });
  closers.push(() => verifier.close());
  return { verifier, metrics };
}

const introspections = () => server.requestsTo(INTROSPECTION_PATH);

describe('opaque tokens by RFC 7662 introspection', () => {
  it('an active token (HTTP Basic client) becomes the identity: sub, client_id, scope and exp, as for a JWT', async () => {
    const { verifier } = await verifierFor(introspectingIssuer('basic'));
    expect(verifier.ready()).toBe(true);
    const token = await server.opaqueToken('alice', { scope: 'openid vm.read', audience: 'gw-api' });
    expect(token).not.toContain('.');
    const result = await verifier.verify(token);
    if (!result.ok) throw new Error(`${result.reason}: ${result.detail ?? ''}`);
    expect(result.value).toMatchObject({ issuer: 'corp', iss: server.issuer, issuerKind: 'external', subject: 'alice', subjectType: 'user', audience: ['gw-api'] });
    expect(result.value.claims).toMatchObject({ client_id: 'gwadmin', scope: 'openid vm.read', sub: 'alice' });
    expect(result.value.claims).not.toHaveProperty('active');
    expect(result.value.expiresAt).toBeGreaterThan(nowSeconds() + 200);
    expect(result.value.fingerprint).not.toContain(token);
    // The audience is checked as for a JWT, on every call.
    expect(await verifier.verify(token, 'other-api')).toMatchObject({ ok: false, reason: 'wrong_audience' });
  });

  it('a client certificate (mutual TLS) authenticates the introspection just as well', async () => {
    const { verifier } = await verifierFor(introspectingIssuer('mtls'));
    const token = await server.opaqueToken('bob', { scope: 'openid' });
    // No aud in the answer: the token counts as issued for the issuer's audience.
    expect(await verifier.verify(token)).toMatchObject({ ok: true, value: { subject: 'bob', audience: ['gw-api'] } });
  });

  it('a token the issuer does not know is inactive: 401 token_inactive', async () => {
    const { verifier, metrics } = await verifierFor(introspectingIssuer());
    expect(await verifier.verify('not-a-token-the-issuer-issued')).toMatchObject({ ok: false, reason: 'token_inactive' });
    const counted = (await metrics.registry.getMetricsAsJSON()).find((m) => m.name === 'jwtauth_introspections_total');
    expect(counted?.values).toContainEqual(expect.objectContaining({ labels: { issuer: 'corp', result: 'inactive' }, value: 1 }));
  });

  it('an expired token is refused: inactive at the issuer once past exp, and token_expired by our own clock', async () => {
    const { verifier } = await verifierFor(introspectingIssuer('basic', { cacheMaxSeconds: 60 }));
    const token = await server.opaqueToken('carol', { expiresInSeconds: 1 });
    expect(await verifier.verify(token)).toMatchObject({ ok: true });
    await new Promise((resolve) => setTimeout(resolve, 2100));
    // The cached answer ended at exp; the issuer now says inactive.
    expect(await verifier.verify(token)).toMatchObject({ ok: false, reason: 'token_inactive' });

    const later = await verifierFor({ ...introspectingIssuer(), clockSkewSeconds: 0 }, () => Date.now() + 3600_000);
    const live = await server.opaqueToken('carol', { expiresInSeconds: 300 });
    expect(await later.verifier.verify(live)).toMatchObject({ ok: false, reason: 'token_expired' });
  });

  it('answers are cached by token hash: a second call does not reach the endpoint', async () => {
    const { verifier } = await verifierFor(introspectingIssuer());
    const token = await server.opaqueToken('dave', { audience: 'gw-api' });
    const before = introspections();
    expect(await verifier.verify(token)).toMatchObject({ ok: true });
    expect(await verifier.verify(token)).toMatchObject({ ok: true });
    expect(await verifier.verify(token, 'elsewhere')).toMatchObject({ ok: false, reason: 'wrong_audience' });
    expect(introspections()).toBe(before + 1);
    // An inactive answer is kept too: a replayed revoked token costs no call.
    await verifier.verify('replayed-unknown-token');
    await verifier.verify('replayed-unknown-token');
    expect(introspections()).toBe(before + 2);
  });

  it('concurrent introspections of one token are coalesced into one request', async () => {
    const { verifier } = await verifierFor(introspectingIssuer());
    const token = await server.opaqueToken('erin', { audience: 'gw-api' });
    const before = introspections();
    const results = await Promise.all(Array.from({ length: 10 }, () => verifier.verify(token)));
    expect(results.every((result) => result.ok)).toBe(true);
    expect(introspections()).toBe(before + 1);
  });

  it('an endpoint that is down, or refuses our credentials, is 503 keys_unavailable, never an allow, and is not cached', async () => {
    const { verifier } = await verifierFor(introspectingIssuer());
    const token = await server.opaqueToken('frank', { audience: 'gw-api' });
    await server.stop();
    try {
      const down = await verifier.verify(token);
      expect(down).toMatchObject({ ok: false, reason: 'keys_unavailable' });
      expect(down.ok ? '' : down.detail).toMatch(/^introspection endpoint unreachable: connection refused/);
    } finally {
      await server.start();
    }
    expect(await verifier.verify(token)).toMatchObject({ ok: true, value: { subject: 'frank' } });

    const refused = await verifierFor(introspectingIssuer('wrong-secret'));
    const answer = await refused.verifier.verify(token);
    expect(answer).toMatchObject({ ok: false, reason: 'keys_unavailable' });
    expect(answer.ok ? '' : answer.detail).toMatch(/refused this sidecar's client credentials \(HTTP 401\)/);
  });

  it('an opaque token with no introspecting issuer is malformed_token; a JWT-shaped token is never introspected', async () => {
    const { verifier } = await verifierFor({ name: 'jwt-only', issuer: 'https://jwt.test', audience: 'a', kind: 'external', jwks: { url: 'http://127.0.0.1:1/jwks' } });
    expect(await verifier.verify('opaque-token')).toMatchObject({ ok: false, reason: 'malformed_token' });
    const introspecting = await verifierFor(introspectingIssuer());
    const before = introspections();
    expect(await introspecting.verifier.verify('aaaa.bbbb.cccc')).toMatchObject({ ok: false, reason: 'malformed_token' });
    expect(introspections()).toBe(before);
  });

  it('the configuration allows one introspecting issuer, external only, and with exactly one way to authenticate', () => {
    const issuer = introspectingIssuer();
    const two = issuersSchema.safeParse([issuer, { ...issuer, name: 'other', issuer: 'https://other.test' }]);
    expect(two.error?.issues.map((issue) => issue.message)).toContain(
      'only one issuer may introspect opaque tokens (an opaque token does not say which issuer it is from)',
    );
    expect(issuersSchema.safeParse([{ ...issuer, kind: 'internal' }]).success).toBe(false);
    const both = { ...issuer, introspection: { ...issuer.introspection, clientCertFile: 'c.pem', clientKey: { file: 'k.pem' } } };
    expect(issuersSchema.safeParse([both]).success).toBe(false);
  });

  it('the preflight reads the introspection secret and certificate files at load', async () => {
    const missingSecret = introspectingIssuer('basic', { clientSecret: { file: 'missing-secret' } });
    const mtls = introspectingIssuer('mtls');
    const badCert = { ...mtls, name: 'other', issuer: 'https://other.test', introspection: { ...mtls.introspection, clientCertFile: pki.caFile } };
    const check = async (issuer: Record<string, unknown>) =>
      preflight(validateConfig({ inbound: {}, issuers: [issuer] }, 'test', pki.dir)).then(
        () => [],
        (error: unknown) => (error instanceof ConfigError ? error.problems : [String(error)]),
      );
    expect(await check(missingSecret)).toContainEqual(`issuers[0] (corp).introspection.clientSecret: cannot read secret file ${join(pki.dir, 'missing-secret')}: ENOENT`);
    expect((await check(badCert)).join('\n')).toMatch(/issuers\[0\] \(other\)\.introspection: .*key values mismatch/);
    expect(await check(mtls)).toEqual([]);
  });
});

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}
