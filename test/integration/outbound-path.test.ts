/**
 * The outbound authorizer with real parts: the real token verifier (src/identity), the exchange
 * source against a real OAuth 2.0 server over mTLS, and the mint source checked by the verifier.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLocalJWKSet, decodeJwt, jwtVerify } from 'jose';
import { pino } from 'pino';
import type { Decision } from '../../src/core/decision.js';
import type { Authorizer, PermissionChecker, TokenVerifier } from '../../src/core/ports.js';
import type { RequestContext } from '../../src/core/request-context.js';
import { issuersSchema } from '../../src/identity/config.js';
import { createTokenVerifier } from '../../src/identity/token-verifier.js';
import { Metrics } from '../../src/observability/metrics.js';
import { outboundSchema } from '../../src/outbound/config.js';
import { createOutboundAuthorizer } from '../../src/outbound/outbound-authorizer.js';
import { tokensSchema } from '../../src/tokens/config.js';
import { createTokenSource } from '../../src/tokens/token-source.js';
import type { OutboundTokenSource } from '../../src/tokens/token-source.js';
import { createTestPki } from '../support/certs.js';
import type { TestPki } from '../support/certs.js';
import { startOAuthServer } from '../support/oauth-server.js';
import type { OAuthServer } from '../support/oauth-server.js';
import { exchangeTokensConfig } from '../support/exchange-source.js';

const logger = pino({ level: 'silent' });
const NO_CHECKS: PermissionChecker = {
  check: () => Promise.reject(new Error('no SpiceDB checks expected here')),
  ready: () => true,
};
const closers: Array<() => unknown> = [];
let pki: TestPki;
let server: OAuthServer;

beforeAll(async () => {
  pki = createTestPki(['gwadmin']);
  server = await startOAuthServer({ pki, clients: ['gwadmin'], audiences: ['vmcontroller', 'gwadmin'] });
});
afterAll(async () => {
  for (const close of closers) await close();
  await server?.close();
  pki?.remove();
});

function request(headers: Record<string, string> = {}): RequestContext {
  return {
    direction: 'outbound',
    requestId: 'r',
    authority: 'vmcontroller',
    method: 'POST',
    path: '/vm.v1.VMs/Create',
    query: '',
    grpc: undefined,
    headers: new Map(Object.entries(headers)),
    duplicateHeaders: new Set(),
    peerPrincipal: undefined,
    contextExtensions: { direction: 'outbound', audience: 'vmcontroller' },
    body: undefined,
  };
}

async function verifierFor(issuers: unknown[]): Promise<TokenVerifier> {
  const verifier = await createTokenVerifier(issuersSchema.parse(issuers), {
    metrics: new Metrics({ processMetrics: false }),
    logger,
    baseDir: pki.dir,
  });
  closers.push(() => verifier.close());
  return verifier;
}

function authorizer(verifier: TokenVerifier, tokens: OutboundTokenSource): Authorizer {
  const config = outboundSchema.parse({ upstreams: [{ audience: 'vmcontroller', authorities: ['vmcontroller'] }, { audience: 'gwadmin' }] });
  if (!config) throw new Error('config');
  return createOutboundAuthorizer(config, {
    verifier,
    checker: NO_CHECKS,
    tokens,
    serviceName: 'gwadmin', serviceSubjectType: 'service',
    maxTokenBytes: 8192,
  }, { root: undefined, maxBytes: 65_536 });
}

function bearer(decision: Decision): string {
  if (decision.kind !== 'allow') throw new Error(`expected allow, got ${decision.reason}: ${decision.facts.detail ?? ''}`);
  const header = decision.setHeaders.find(([name]) => name === 'authorization');
  if (!header) throw new Error('no authorization header set');
  return header[1].slice('Bearer '.length);
}

describe('outbound path with the token service', () => {
  let outbound: Authorizer;

  beforeAll(async () => {
    writeFileSync(join(pki.dir, 'internal-jwks.json'), JSON.stringify(await server.jwks()));
    writeFileSync(join(pki.dir, 'external-jwks.json'), JSON.stringify(await server.externalJwks()));
    const verifier = await verifierFor([
      { name: 'mesh', issuer: server.issuer, audience: 'gwadmin', kind: 'internal', subjectType: 'service', typ: 'at+jwt', jwks: { file: 'internal-jwks.json' } },
      { name: 'public', issuer: server.externalIssuer, audience: 'public-api', kind: 'external', jwks: { file: 'external-jwks.json' } },
    ]);
    const tokensConfig = exchangeTokensConfig(pki, server.tokenEndpoint, { extra: { audienceParameter: 'resource' } });
    const tokens = await createTokenSource(tokensConfig, { serviceName: 'gwadmin', metrics: new Metrics({ processMetrics: false }), logger, baseDir: pki.dir });
    closers.push(() => tokens.close());
    outbound = authorizer(verifier, tokens);
  });

  it('attaches a service token from the token service to a call without one', async () => {
    const decision = await outbound.decide(request());
    expect(decision).toMatchObject({ kind: 'allow', reason: 'service_token_attached' });
    const { payload } = await jwtVerify(bearer(decision), createLocalJWKSet(await server.jwks()), { audience: 'vmcontroller', issuer: server.issuer });
    expect(payload.sub).toBe('gwadmin');
  });

  it('exchanges a verified external user token and sends the exchanged one', async () => {
    const userToken = await server.externalUserToken('alice');
    const decision = await outbound.decide(request({ authorization: `Bearer ${userToken}` }));
    expect(decision).toMatchObject({ kind: 'allow', reason: 'user_token_exchanged', facts: { subject: 'alice' } });
    const sent = bearer(decision);
    expect(sent).not.toBe(userToken);
    expect(decodeJwt(sent)).toMatchObject({ sub: 'alice', aud: 'vmcontroller', act: { sub: 'gwadmin' } });
  });

  it('passes an internal token for this upstream as it is', async () => {
    const internal = bearer(await outbound.decide(request()));
    const decision = await outbound.decide(request({ authorization: `Bearer ${internal}` }));
    expect(decision).toMatchObject({ kind: 'allow', reason: 'internal_token_passed', setHeaders: [] });
  });

  it('denies an internal token minted for another upstream', async () => {
    const forGwadmin = bearer(await outbound.decide({ ...request(), authority: 'gw', contextExtensions: { direction: 'outbound', audience: 'gwadmin' } }));
    const decision = await outbound.decide(request({ authorization: `Bearer ${forGwadmin}` }));
    expect(decision).toMatchObject({ kind: 'deny', reason: 'wrong_audience', status: 401 });
  });

  it('denies an expired user token without asking the token service', async () => {
    const expired = await server.externalUserToken('alice', -120);
    const before = server.requests;
    const decision = await outbound.decide(request({ authorization: `Bearer ${expired}` }));
    expect(decision).toMatchObject({ kind: 'deny', reason: 'token_expired', status: 401 });
    expect(server.requests).toBe(before);
  });
});

describe('outbound path with minted tokens', () => {
  it('mints a service token that the real verifier accepts as an internal token for the upstream', async () => {
    const tokensConfig = tokensSchema.parse({ source: { kind: 'mint', issuer: 'https://mesh.example' } });
    if (!tokensConfig) throw new Error('tokens config');
    const tokens = await createTokenSource(tokensConfig, { serviceName: 'gwadmin', metrics: new Metrics({ processMetrics: false }), logger, baseDir: pki.dir });
    closers.push(() => tokens.close());
    writeFileSync(join(pki.dir, 'mint-jwks.json'), JSON.stringify(tokens.publicKeys?.jwks()));
    const verifier = await verifierFor([
      { name: 'mesh', issuer: 'https://mesh.example', audience: 'gwadmin', kind: 'internal', subjectType: 'service', typ: 'at+jwt', algorithms: ['ES256'], jwks: { file: 'mint-jwks.json' } },
    ]);
    const outbound = authorizer(verifier, tokens);
    const minted = bearer(await outbound.decide(request()));
    const result = await verifier.verify(minted, 'vmcontroller');
    expect(result).toMatchObject({ ok: true, value: { issuerKind: 'internal', subject: 'gwadmin', audience: ['vmcontroller'] } });
    expect(await outbound.decide(request({ authorization: `Bearer ${minted}` }))).toMatchObject({ kind: 'allow', reason: 'internal_token_passed' });
  });
});
