/**
 * Which files a configuration names and which adapter each one rebuilds, and the fingerprint a
 * reload compares: the content of those files, not only the configuration's hash. The same under
 * a real process and real `..data` swaps is test/hardening/rotation-files.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load.js';
import type { LoadedConfig } from '../../src/config/load.js';
import { changedFiles, digestsFor, fingerprintOf, namedFiles } from '../../src/lifecycle/named-files.js';
import { createTestPki } from '../support/certs.js';

function configIn(dir: string, input: Record<string, unknown>): LoadedConfig {
  return validateConfig({ inbound: { rules: [{ name: 'public', match: { http: { path: '/status' } }, auth: 'none' }] }, ...input }, join(dir, 'jwtauth.yaml'), dir);
}

/** Every kind of file, each named relative to the configuration's directory. */
const everyFile = {
  service: { name: 'gwadmin' },
  issuers: [
    { name: 'file-keys', issuer: 'https://a.test', audience: 'gw', kind: 'internal', jwks: { file: 'jwks.json' } },
    {
      name: 'idp',
      issuer: 'https://idp.test',
      audience: 'gw',
      kind: 'external',
      jwks: { url: 'https://idp.test/jwks', caFile: 'idp-ca.pem' },
      introspection: { endpoint: 'https://idp.test/introspect', clientId: 'gw', clientCertFile: 'intro.crt', clientKey: { file: 'intro.key' }, caFile: 'idp-ca.pem' },
    },
  ],
  spicedb: { endpoint: 'spicedb:50051', tls: { caFile: 'spicedb-ca.pem' }, presharedKey: { file: 'spicedb.key' } },
  tokens: { source: { kind: 'exchange', tokenEndpoint: 'https://sts.test/token', clientCertFile: 'tls.crt', clientKey: { file: 'tls.key' }, caFile: 'ca.crt' } },
  outbound: { upstreams: [{ audience: 'vmcontroller' }] },
};

/** One signing key file; the SpiceDB key from the environment. */
const mintWithKeyFile = {
  service: { name: 'gwadmin' },
  spicedb: { endpoint: 'spicedb:50051', tls: true, presharedKey: { env: 'SPICEDB_KEY' } },
  tokens: { source: { kind: 'mint', keys: [{ file: 'signing-0.pem' }] } },
  outbound: { upstreams: [{ audience: 'vmcontroller' }] },
};

describe('namedFiles', () => {
  it('lists every file an adapter reads, with the adapter a change to it rebuilds', () => {
    const dir = '/etc/jwtauth';
    const files = namedFiles(configIn(dir, everyFile)).map(({ use, path, reader, kind }) => ({ use, path, reader, kind }));
    expect(files).toEqual([
      { use: 'issuers[file-keys].jwks.file', path: '/etc/jwtauth/jwks.json', reader: 'verifier', kind: 'JWKS' },
      { use: 'issuers[idp].jwks.caFile', path: '/etc/jwtauth/idp-ca.pem', reader: 'verifier', kind: 'CA bundle' },
      { use: 'issuers[idp].introspection.clientCertFile', path: '/etc/jwtauth/intro.crt', reader: 'verifier', kind: 'client certificate' },
      { use: 'issuers[idp].introspection.clientKey', path: '/etc/jwtauth/intro.key', reader: 'verifier', kind: 'private key' },
      { use: 'issuers[idp].introspection.caFile', path: '/etc/jwtauth/idp-ca.pem', reader: 'verifier', kind: 'CA bundle' },
      { use: 'spicedb.presharedKey', path: '/etc/jwtauth/spicedb.key', reader: 'checker', kind: 'secret' },
      { use: 'spicedb.tls.caFile', path: '/etc/jwtauth/spicedb-ca.pem', reader: 'checker', kind: 'CA bundle' },
      { use: 'tokens.source.clientCertFile', path: '/etc/jwtauth/tls.crt', reader: 'tokens', kind: 'client certificate' },
      { use: 'tokens.source.clientKey', path: '/etc/jwtauth/tls.key', reader: 'tokens', kind: 'private key' },
      { use: 'tokens.source.caFile', path: '/etc/jwtauth/ca.crt', reader: 'tokens', kind: 'CA bundle' },
    ]);
  });

  it('names the embedded SpiceDB files when there is no endpoint', () => {
    const files = namedFiles(configIn('/etc/jwtauth', { spicedb: { embedded: { schemaFile: 'schema.zed', relationshipsFile: 'rels.txt' } } }));
    expect(files.map(({ use, path, reader }) => ({ use, path, reader }))).toEqual([
      { use: 'spicedb.embedded.schemaFile', path: '/etc/jwtauth/schema.zed', reader: 'checker' },
      { use: 'spicedb.embedded.relationshipsFile', path: '/etc/jwtauth/rels.txt', reader: 'checker' },
    ]);
  });

  it('leaves out secrets from the environment and the development key the sidecar writes itself', () => {
    const files = namedFiles(
      configIn('/etc/jwtauth', {
        ...mintWithKeyFile,
      }),
    );
    expect(files.map((file) => file.use)).toEqual(['tokens.source.keys[0].file']);
    expect(files[0]?.reader).toBe('tokens');
  });
});

describe('fingerprintOf', () => {
  function filesIn(): { dir: string; write(name: string, text: string): void } {
    const dir = mkdtempSync(join(tmpdir(), 'jwtauth-named-'));
    return { dir, write: (name, text) => writeFileSync(join(dir, name), text) };
  }

  it('changes with the content of a named file while the configuration stays the same, and says which file', () => {
    const { dir, write } = filesIn();
    for (const name of ['jwks.json', 'intro.crt', 'intro.key', 'idp-ca.pem', 'spicedb.key', 'spicedb-ca.pem', 'tls.crt', 'tls.key', 'ca.crt']) write(name, `${name} v1`);
    const loaded = configIn(dir, everyFile);
    const before = fingerprintOf(loaded);
    expect(fingerprintOf(loaded).id, 'the same files read twice').toBe(before.id);

    write('tls.crt', 'tls.crt v2');
    const after = fingerprintOf(loaded);
    expect(after.id).not.toBe(before.id);
    expect(changedFiles(before, after)).toEqual([`tokens.source.clientCertFile (${join(dir, 'tls.crt')})`]);
    // Only the token source's section key moves: the verifier and the checker are reused.
    expect(digestsFor(after, 'tokens')).not.toBe(digestsFor(before, 'tokens'));
    expect(digestsFor(after, 'verifier')).toBe(digestsFor(before, 'verifier'));
    expect(digestsFor(after, 'checker')).toBe(digestsFor(before, 'checker'));

    write('jwks.json', 'jwks.json v2');
    const jwksChanged = fingerprintOf(loaded);
    expect(digestsFor(jwksChanged, 'verifier')).not.toBe(digestsFor(after, 'verifier'));
    expect(digestsFor(jwksChanged, 'tokens')).toBe(digestsFor(after, 'tokens'));
  });

  it('tells a missing file from a present one, and a file arriving is a change', () => {
    const { dir, write } = filesIn();
    const loaded = configIn(dir, mintWithKeyFile);
    const missing = fingerprintOf(loaded);
    expect(missing.files[0]?.digest).toBe('unreadable: ENOENT');
    write('signing-0.pem', 'key');
    expect(fingerprintOf(loaded).id).not.toBe(missing.id);
  });

  it('holds no file content, only digests', () => {
    const { dir, write } = filesIn();
    write('spicedb.key', 'the-preshared-key-itself');
    const fingerprint = fingerprintOf(configIn(dir, { spicedb: { endpoint: 'spicedb:50051', tls: false, presharedKey: { file: 'spicedb.key' } } }));
    expect(JSON.stringify(fingerprint)).not.toContain('the-preshared-key-itself');
  });

  it("reports a certificate's notAfter, and a CA bundle's earliest", () => {
    const pki = createTestPki(['gwadmin']);
    try {
      const gwadmin = pki.clients.gwadmin;
      if (!gwadmin) throw new Error('no gwadmin');
      const loaded = validateConfig(
        {
          service: { name: 'gwadmin' },
          tokens: { source: { kind: 'exchange', tokenEndpoint: 'https://sts.test/token', clientCertFile: gwadmin.certFile, clientKey: { file: gwadmin.keyFile }, caFile: pki.caFile } },
          outbound: { upstreams: [{ audience: 'vmcontroller' }] },
        },
        join(pki.dir, 'jwtauth.yaml'),
        pki.dir,
      );
      const byUse = new Map(fingerprintOf(loaded).files.map((file) => [file.use, file.notAfterSeconds]));
      const now = Date.now() / 1000;
      // certs.ts: clients valid one day, the CA two.
      expect(byUse.get('tokens.source.clientCertFile')).toBeGreaterThan(now + 86_400 - 120);
      expect(byUse.get('tokens.source.clientCertFile')).toBeLessThan(now + 86_400 + 120);
      expect(byUse.get('tokens.source.caFile')).toBeGreaterThan(now + 2 * 86_400 - 120);
      expect(byUse.get('tokens.source.clientKey'), 'a key has no notAfter').toBeUndefined();
    } finally {
      pki.remove();
    }
  });
});
