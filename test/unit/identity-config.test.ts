/**
 * The `issuers` section refuses at load what would otherwise be silently unsafe or unused: TLS
 * settings on a plaintext URL, an issuer with no way to check tokens, introspection that could hand
 * a token to the wrong issuer, ambiguous names and iss values.
 */
import { describe, expect, it } from 'vitest';
import { issuersSchema } from '../../src/identity/config.js';

const ISS = 'https://auth.example';
const base = { name: 'auth', issuer: ISS, audience: 'gw', kind: 'external' };
const basic = { endpoint: 'https://auth.example/introspect', clientId: 'gw', clientSecret: { env: 'SECRET' } };

/** The issues zod reports, as `path: message`. */
function problems(issuers: unknown[]): string[] {
  const result = issuersSchema.safeParse(issuers);
  return result.success ? [] : result.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
}

describe('issuers config', () => {
  it('takes a CA bundle for a JWKS only with an https url', () => {
    expect(problems([{ ...base, jwks: { url: 'http://auth.example/jwks', caFile: 'ca.pem' } }])).toEqual(['0.jwks.caFile: caFile needs an https url']);
    expect(problems([{ ...base, jwks: { url: 'https://auth.example/jwks', caFile: 'ca.pem' } }])).toEqual([]);
    expect(problems([{ ...base, jwks: { url: 'http://auth.example/jwks' } }])).toEqual([]);
  });

  it('needs jwks or introspection, introspection only for external issuers, and discovery: true only with a URL issuer', () => {
    expect(problems([base])).toEqual(['0.jwks: an issuer needs jwks (JWTs), introspection (opaque tokens), or both']);
    expect(problems([{ ...base, introspection: basic }])).toEqual([]);
    expect(problems([{ ...base, kind: 'internal', introspection: basic }])).toEqual(['0.introspection: introspection is for external issuers (kind: external); internal tokens are JWTs']);
    expect(problems([{ ...base, issuer: 'auth-service', jwks: { discovery: true } }])).toEqual(['0.jwks.discovery: discovery: true needs an http(s) issuer URL; give the document URL instead']);
    expect(problems([{ ...base, issuer: 'auth-service', jwks: { discovery: 'https://auth.example/.well-known/openid-configuration' } }])).toEqual([]);
    expect(problems([{ ...base, jwks: { discovery: true } }])).toEqual([]);
  });

  it('authenticates introspection with exactly one of a secret or a client certificate and key, TLS settings only over https', () => {
    const { clientSecret: _secret, ...noSecret } = basic;
    const mtls = { ...noSecret, clientCertFile: 'client.pem', clientKey: { file: 'client.key' } };
    const introspection = (overrides: Record<string, unknown>) => problems([{ ...base, introspection: overrides }]);
    expect(introspection(mtls)).toEqual([]);
    expect(introspection(noSecret)).toEqual(['0.introspection.clientSecret: authenticate with exactly one of clientSecret (HTTP Basic) or clientCertFile + clientKey (mutual TLS)']);
    expect(introspection({ ...mtls, clientSecret: { env: 'SECRET' } })).toEqual([
      '0.introspection.clientSecret: authenticate with exactly one of clientSecret (HTTP Basic) or clientCertFile + clientKey (mutual TLS)',
    ]);
    expect(introspection({ ...noSecret, clientCertFile: 'client.pem' })).toEqual(['0.introspection.clientKey: mutual TLS needs both clientCertFile and clientKey']);
    expect(introspection({ ...noSecret, clientKey: { file: 'client.key' } })).toEqual(['0.introspection.clientCertFile: mutual TLS needs both clientCertFile and clientKey']);
    const plain = 'http://auth.example/introspect';
    expect(introspection({ ...basic, endpoint: plain })).toEqual([]);
    for (const tls of [{ ...mtls, endpoint: plain }, { ...basic, endpoint: plain, caFile: 'ca.pem' }, { ...basic, endpoint: plain, serverName: 'auth' }]) {
      expect(introspection(tls)).toEqual(['0.introspection.endpoint: clientCertFile, caFile and serverName need an https endpoint']);
    }
    expect(introspection({ ...basic, caFile: 'ca.pem', serverName: 'auth' })).toEqual([]);
  });

  it('refuses a second introspecting issuer, and duplicate names or iss values', () => {
    const second = { ...base, name: 'other', issuer: 'https://other.example' };
    expect(problems([{ ...base, introspection: basic }, { ...second, introspection: basic }])).toEqual([
      '1.introspection: only one issuer may introspect opaque tokens (an opaque token does not say which issuer it is from)',
    ]);
    expect(problems([{ ...base, introspection: basic }, { ...second, jwks: { file: 'k.json' } }])).toEqual([]);
    expect(problems([{ ...base, jwks: { file: 'k.json' } }, { ...second, name: 'auth', jwks: { file: 'k.json' } }])).toEqual(['1.name: duplicate issuer name "auth"']);
    expect(problems([{ ...base, jwks: { file: 'k.json' } }, { ...base, name: 'other', jwks: { file: 'k.json' } }])).toEqual([`1.issuer: duplicate iss "${ISS}"`]);
  });

  it('lists each allowed algorithm once', () => {
    const parsed = issuersSchema.parse([{ ...base, jwks: { file: 'k.json' }, algorithms: ['ES256', 'RS256', 'ES256'] }]);
    expect(parsed[0]?.algorithms).toEqual(['ES256', 'RS256']);
  });
});
