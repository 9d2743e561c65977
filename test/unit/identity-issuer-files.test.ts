/**
 * `validate` (preflight) reads an issuer's files the way the adapters will, so a file serve would
 * fail on is refused at load, named by its config key.
 */
import { describe, expect, it } from 'vitest';
import { tmpdir } from 'node:os';
import { issuersSchema } from '../../src/identity/config.js';
import { issuerFileProblems } from '../../src/identity/issuer-files.js';

const issuer = (overrides: Record<string, unknown>) =>
  issuersSchema.parse([{ name: 'corp', issuer: 'https://corp.example', audience: 'gw', kind: 'external', ...overrides }])[0]!;

describe('issuer files at load', () => {
  it('refuses a discovery CA bundle that cannot be read, and takes a discovery without one', () => {
    const problems = issuerFileProblems(issuer({ jwks: { discovery: true, caFile: 'no-such-ca.pem' } }), 'issuers[0] (corp)', tmpdir(), {});
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^issuers\[0\] \(corp\)\.jwks\.caFile: .*no-such-ca\.pem/);
    expect(issuerFileProblems(issuer({ jwks: { discovery: true } }), 'issuers[0] (corp)', tmpdir(), {})).toEqual([]);
    expect(issuerFileProblems(issuer({ jwks: { url: 'https://corp.example/jwks' } }), 'issuers[0] (corp)', tmpdir(), {})).toEqual([]);
  });

  it('refuses an introspection secret that cannot be resolved', () => {
    const problems = issuerFileProblems(
      issuer({ introspection: { endpoint: 'https://corp.example/introspect', clientId: 'gw', clientSecret: { env: 'JWTAUTH_TEST_MISSING' } } }),
      'issuers[0] (corp)',
      tmpdir(),
      {},
    );
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^issuers\[0\] \(corp\)\.introspection\.clientSecret: .*JWTAUTH_TEST_MISSING/);
  });
});
