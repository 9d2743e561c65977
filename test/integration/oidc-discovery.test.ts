/**
 * Guarantee: an issuer configured with `jwks.discovery` gets its keys from the jwks_uri of its
 * OpenID discovery document, only when the document names exactly the configured issuer, and
 * keeps its last good keys through an outage. Against a real oidc-provider over HTTPS with a
 * private CA; the tokens are real client-credentials access tokens it issued.
 */
import { relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TokenResult } from '../../src/core/ports.js';
import { issuersSchema } from '../../src/identity/config.js';
import { createTokenVerifier } from '../../src/identity/token-verifier.js';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import { createTokenSource } from '../../src/tokens/token-source.js';
import type { OutboundTokenSource } from '../../src/tokens/token-source.js';
import { createTestPki } from '../support/certs.js';
import type { TestPki } from '../support/certs.js';
import { makeSigningKey, nowSeconds, signToken } from '../../dev/jwt-fixtures.js';
import { startOAuthServer } from '../support/oauth-server.js';
import type { OAuthServer } from '../support/oauth-server.js';
import { exchangeTokensConfig } from '../support/exchange-source.js';

const DISCOVERY_PATH = '/.well-known/openid-configuration';
let pki: TestPki;
let server: OAuthServer;
let tokens: OutboundTokenSource;
const closers: (() => Promise<void> | void)[] = [];

beforeAll(async () => {
  pki = createTestPki(['gwadmin']);
  server = await startOAuthServer({ pki, clients: ['gwadmin'], audiences: ['vmcontroller'] });
  tokens = await createTokenSource(exchangeTokensConfig(pki, server.tokenEndpoint, { extra: { audienceParameter: 'resource' } }), {
    serviceName: 'gwadmin',
    metrics: new Metrics({ processMetrics: false }),
    logger: createLogger({ level: 'silent' }),
    baseDir: pki.dir,
    uncached: true,
  });
});
afterAll(async () => {
  for (const close of closers.splice(0).reverse()) await close();
  await tokens?.close();
  await server?.close();
  pki?.remove();
});

/** A real access token from the provider: ES256 at+jwt, iss = the provider, sub = client_id = gwadmin. */
async function issuedToken(): Promise<string> {
  const result: TokenResult = await tokens.issue({ kind: 'service', audience: 'vmcontroller' });
  if (!result.ok) throw new Error(`no token: ${result.reason} ${result.detail ?? ''}`);
  return result.value.token;
}

interface LogLine {
  readonly level: number;
  readonly msg: string;
  readonly error?: string;
}

async function verifierFor(jwks: Record<string, unknown>, issuer = server.issuer) {
  const lines: LogLine[] = [];
  const logger = createLogger({ level: 'debug', destination: { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) } });
  const issuers = issuersSchema.parse([{ name: 'corp', issuer, audience: 'vmcontroller', kind: 'internal', typ: 'at+jwt', algorithms: ['ES256'], jwks }]);
  const verifier = await createTokenVerifier(issuers, { metrics: new Metrics({ processMetrics: false }), logger, baseDir: pki.dir, fetchTimeoutMs: 2000 });
  closers.push(() => verifier.close());
  return { verifier, lines };
}

describe('OIDC discovery of an issuer’s keys', () => {
  it('discovery: true reads <issuer>/.well-known/openid-configuration over the private CA, follows jwks_uri, and a token verifies', async () => {
    const before = { discovery: server.requestsTo(DISCOVERY_PATH), jwks: server.requestsTo('/jwks') };
    const { verifier } = await verifierFor({ discovery: true, caFile: relative(pki.dir, pki.caFile) });
    expect(verifier.ready()).toBe(true);
    expect(server.requestsTo(DISCOVERY_PATH)).toBe(before.discovery + 1);
    expect(server.requestsTo('/jwks')).toBe(before.jwks + 1);
    expect(await verifier.verify(await issuedToken())).toMatchObject({ ok: true, value: { issuer: 'corp', subject: 'gwadmin', iss: server.issuer } });
  });

  it('an explicit discovery document URL works the same', async () => {
    const { verifier } = await verifierFor({ discovery: server.discoveryUrl, caFile: pki.caFile });
    expect(await verifier.verify(await issuedToken())).toMatchObject({ ok: true, value: { subject: 'gwadmin' } });
  });

  it('a document naming another issuer (here without the configured trailing slash) is refused: no keys, keys_unavailable, a log naming both', async () => {
    const configured = `${server.issuer}/`;
    const jwksBefore = server.requestsTo('/jwks');
    const { verifier, lines } = await verifierFor({ discovery: true, caFile: pki.caFile }, configured);
    expect(verifier.ready()).toBe(false);
    // A token naming the configured issuer: there are no keys to check it with.
    const key = await makeSigningKey('ES256');
    const token = await signToken(key, { iss: configured, aud: 'vmcontroller', sub: 'alice', exp: nowSeconds() + 60 }, { typ: 'at+jwt' });
    expect(await verifier.verify(token)).toMatchObject({ ok: false, reason: 'keys_unavailable' });
    const error = lines.find((line) => line.error !== undefined)?.error;
    expect(error).toBe(
      `the discovery document names ${JSON.stringify(server.issuer)}, not the configured issuer ${JSON.stringify(configured)}; it must match exactly, so its keys are refused`,
    );
    expect(server.requestsTo('/jwks')).toBe(jwksBefore);
  });

  it('over HTTPS without the private CA it fails closed and the log says TLS', async () => {
    const { verifier, lines } = await verifierFor({ discovery: true });
    expect(verifier.ready()).toBe(false);
    expect(lines.find((line) => line.error !== undefined)?.error).toMatch(/^cannot fetch the discovery document: TLS failed: /);
  });

  it('an outage after the first load keeps the last good keys; an unknown kid then is unknown_key, not an outage', async () => {
    const [first, second] = [await issuedToken(), await issuedToken()];
    const { verifier, lines } = await verifierFor({ discovery: true, caFile: pki.caFile, cooldownSeconds: 1 });
    expect(await verifier.verify(first)).toMatchObject({ ok: true });
    await server.stop();
    try {
      await new Promise((resolve) => setTimeout(resolve, 1100));
      const rotated = await makeSigningKey('ES256', 'rotated-away');
      const unknown = await signToken(rotated, { iss: server.issuer, aud: 'vmcontroller', sub: 'alice', exp: nowSeconds() + 60 }, { typ: 'at+jwt' });
      // The unknown kid triggers a refetch, which fails at the discovery document.
      expect(await verifier.verify(unknown)).toMatchObject({ ok: false, reason: 'unknown_key' });
      const warning = lines.find((line) => line.msg === 'JWKS refresh failed; keeping last good keys');
      expect(warning?.error).toMatch(/^cannot fetch the discovery document: connection refused/);
      // A token never verified before still verifies with the kept keys.
      expect(await verifier.verify(second)).toMatchObject({ ok: true, value: { subject: 'gwadmin' } });
      expect(verifier.ready()).toBe(true);
    } finally {
      await server.start();
    }
  });

  it('discovery: true needs an issuer URL to append the well-known path to', () => {
    const parsed = issuersSchema.safeParse([{ name: 'corp', issuer: 'corp', audience: 'a', kind: 'internal', jwks: { discovery: true } }]);
    expect(parsed.success).toBe(false);
    expect(parsed.error?.issues[0]).toMatchObject({ path: [0, 'jwks', 'discovery'] });
  });
});
