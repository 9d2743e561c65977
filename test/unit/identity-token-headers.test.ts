/**
 * Protected-header members the verifier must not wave through: a critical extension it does not
 * understand (RFC 7515 §4.1.11: the JWS must be rejected) and a malformed crit. jose refuses to
 * sign such tokens, so they are built and signed here by hand with the issuer's real key.
 */
import { KeyObject, sign } from 'node:crypto';
import { tmpdir } from 'node:os';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { issuersSchema } from '../../src/identity/config.js';
import { createTokenVerifier } from '../../src/identity/token-verifier.js';
import type { TokenVerifier } from '../../src/core/ports.js';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import { jwks, JwksServer, makeSigningKey, nowSeconds, signToken } from '../../dev/jwt-fixtures.js';
import type { SigningKey } from '../../dev/jwt-fixtures.js';

const ISS = 'https://auth.example';
let server: JwksServer;
let key: SigningKey;
let verifier: TokenVerifier & { close(): Promise<void> };

const b64 = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');

/** An ES256 JWS over exactly this header and payload, signed with the issuer's key. */
function handSigned(header: Record<string, unknown>, payload: Record<string, unknown>): string {
  const input = `${b64(header)}.${b64(payload)}`;
  const signature = sign('sha256', Buffer.from(input), { key: KeyObject.from(key.privateKey), dsaEncoding: 'ieee-p1363' });
  return `${input}.${signature.toString('base64url')}`;
}

const claims = () => ({ iss: ISS, aud: 'gwadmin', sub: 'alice', iat: nowSeconds(), exp: nowSeconds() + 300 });

beforeEach(async () => {
  key = await makeSigningKey('ES256');
  server = await new JwksServer().start(jwks(key));
  const issuers = issuersSchema.parse([{ name: 'auth', issuer: ISS, audience: 'gwadmin', kind: 'external', subjectType: 'user', jwks: { url: server.url }, algorithms: ['ES256'] }]);
  verifier = await createTokenVerifier(issuers, { metrics: new Metrics({ processMetrics: false }), logger: createLogger({ level: 'silent' }), baseDir: tmpdir(), fetchTimeoutMs: 1000 });
});
afterEach(async () => {
  await verifier.close();
  await server.stop();
});

describe('protected header members', () => {
  it('accepts a hand-signed token without them (so the refusals below are about the header alone)', async () => {
    expect(await verifier.verify(handSigned({ alg: 'ES256', kid: key.kid }, claims()))).toMatchObject({ ok: true, value: { subject: 'alice' } });
    expect(await verifier.verify(await signToken(key, claims()))).toMatchObject({ ok: true });
  });

  it('refuses a token that marks as critical an extension the verifier does not understand', async () => {
    const token = handSigned({ alg: 'ES256', kid: key.kid, crit: ['urn:example:must-understand'], 'urn:example:must-understand': true }, claims());
    expect(await verifier.verify(token)).toMatchObject({ ok: false, reason: 'disallowed_algorithm' });
  });

  it('refuses a malformed crit as a malformed token, naming the problem', async () => {
    const token = handSigned({ alg: 'ES256', kid: key.kid, crit: 'exp' }, claims());
    const result = await verifier.verify(token);
    expect(result).toMatchObject({ ok: false, reason: 'malformed_token' });
    expect(!result.ok && result.detail).toMatch(/crit/);
  });
});
