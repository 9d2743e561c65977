/**
 * Which issuer has no keys is said by name: the verifier reports it per issuer, and `check`
 * names it instead of a bare "keys not ready". And a verifier rebuilt (a rotated file of another
 * issuer) while an issuer's JWKS endpoint is down keeps that issuer's last good keys.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { runCli } from '../../src/commands/dispatch.js';
import { issuersSchema } from '../../src/identity/config.js';
import { createTokenVerifier } from '../../src/identity/token-verifier.js';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import { JwksServer, jwks, makeSigningKey, nowSeconds, signToken } from '../../dev/jwt-fixtures.js';
import type { SigningKey } from '../../dev/jwt-fixtures.js';

/** Nothing listens on port 1: a JWKS URL there never gives keys. */
const UNREACHABLE_JWKS = 'http://127.0.0.1:1/jwks.json';

/** mesh has keys (a file); partner and optional never get any. */
function issuersWith(dir: string, meshKey: SigningKey): unknown[] {
  writeFileSync(join(dir, 'jwks.json'), JSON.stringify(jwks(meshKey)));
  return [
    { name: 'mesh', issuer: 'https://mesh.test', audience: 'gwadmin', kind: 'internal', jwks: { file: join(dir, 'jwks.json') }, algorithms: ['ES256'] },
    { name: 'partner', issuer: 'https://partner.test', audience: 'gwadmin', kind: 'external', jwks: { url: UNREACHABLE_JWKS } },
    { name: 'optional', issuer: 'https://optional.test', audience: 'gwadmin', kind: 'external', jwks: { url: UNREACHABLE_JWKS }, required: false },
  ];
}

describe('issuer readiness', () => {
  it('names each issuer without keys, and whether it is required', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'jwtauth-issuers-'));
    const verifier = await createTokenVerifier(issuersSchema.parse(issuersWith(dir, await makeSigningKey('ES256', 'mesh-1'))), {
      metrics: new Metrics({ processMetrics: false }),
      logger: createLogger({ level: 'silent' }),
      baseDir: dir,
      fetchTimeoutMs: 200,
    });
    try {
      expect(verifier.issuersWithoutKeys()).toEqual([
        { name: 'partner', required: true },
        { name: 'optional', required: false },
      ]);
      expect(verifier.ready()).toBe(false);
    } finally {
      await verifier.close();
    }
  });

  it('check names the issuer that has no keys', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'jwtauth-issuers-'));
    const key = await makeSigningKey('ES256', 'mesh-1');
    const issuers = issuersWith(dir, key);
    const configFile = join(dir, 'jwtauth.yaml');
    writeFileSync(configFile, stringify({ issuers, inbound: { rules: [{ name: 'api', match: { http: { path: '/api/**' } }, auth: 'token' }] } }));
    const token = await signToken(key, { iss: 'https://mesh.test', aud: 'gwadmin', sub: 'svc', iat: nowSeconds(), exp: nowSeconds() + 300 });
    let err = '';
    await runCli(['check', '--config', configFile, '--method', 'GET', '--path', '/api/x', '--token', token], { out: () => undefined, err: (text) => (err += `${text}\n`), env: {} });
    expect(err).toMatch(/not ready after 5 s: issuer partner has no keys; issuer optional has no keys \(required: false/);
  }, 30_000);

  it('a rebuilt verifier keeps the last good keys of an unchanged issuer whose JWKS is down', async () => {
    const key = await makeSigningKey('ES256', 'idp-1');
    const server = await new JwksServer().start(jwks(key));
    const issuers = issuersSchema.parse([{ name: 'idp', issuer: 'https://idp.test', audience: 'gwadmin', kind: 'external', jwks: { url: server.url }, algorithms: ['ES256'] }]);
    const deps = { metrics: new Metrics({ processMetrics: false }), logger: createLogger({ level: 'silent' }), baseDir: '/', fetchTimeoutMs: 500 };
    const token = await signToken(key, { iss: 'https://idp.test', aud: 'gwadmin', sub: 'alice', iat: nowSeconds(), exp: nowSeconds() + 300 });
    const first = await createTokenVerifier(issuers, deps);
    server.setDown(true);
    const rebuilt = await createTokenVerifier(issuers, { ...deps, previous: first });
    const fresh = await createTokenVerifier(issuers, deps);
    try {
      expect((await first.verify(token)).ok).toBe(true);
      // Control: without the previous verifier, the same rebuild has no keys.
      expect(await fresh.verify(token)).toMatchObject({ ok: false, reason: 'keys_unavailable' });
      expect((await rebuilt.verify(token)).ok).toBe(true);
      expect(rebuilt.issuersWithoutKeys()).toEqual([]);
    } finally {
      await Promise.all([first.close(), rebuilt.close(), fresh.close(), server.stop()]);
    }
  });
});
