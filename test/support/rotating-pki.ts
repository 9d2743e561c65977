/**
 * Renewals for the test PKI (certs.ts): a new client certificate for the same service name, signed
 * by the same CA, as cert-manager or SPIRE issues one. `openssl ca` rather than `x509 -req`, because
 * it takes explicit validity dates: an already expired certificate is one of the renewals a
 * sidecar must refuse.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestPki } from './certs.js';

export interface IssuedCertificate {
  readonly cert: string;
  readonly key: string;
  /** As X509Certificate.serialNumber spells it (upper-case hex). */
  readonly serial: string;
  readonly notAfterSeconds: number;
}

/** openssl's date form for -startdate/-enddate. */
function opensslDate(date: Date): string {
  return `${date.toISOString().slice(0, 19).replace(/[-T:]/g, '')}Z`;
}

/**
 * A client certificate for `name` (CN and DNS SAN, clientAuth), signed by the PKI's CA, valid for
 * a day; or, with `expired`, one that expired yesterday.
 */
export function renewClientCertificate(pki: TestPki, name: string, options: { expired?: boolean } = {}): IssuedCertificate {
  const dir = mkdtempSync(join(pki.dir, 'renewal-'));
  const file = (base: string): string => join(dir, base);
  const run = (args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  run(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', file('client.key')]);
  run(['req', '-new', '-key', file('client.key'), '-subj', `/CN=${name}`, '-out', file('client.csr')]);
  writeFileSync(file('index.txt'), '');
  // A random positive serial: each renewal is told apart by it at the token service.
  writeFileSync(file('serial'), `${randomBytes(8).toString('hex').toUpperCase().replace(/^./, '1')}\n`);
  writeFileSync(
    file('ca.cnf'),
    [
      '[ca]', 'default_ca = renewals',
      '[renewals]', 'database = index.txt', 'new_certs_dir = .', 'serial = serial', 'default_md = sha256', 'policy = any', 'copy_extensions = none',
      '[any]', 'commonName = supplied',
      '[client]', 'basicConstraints = CA:FALSE', `subjectAltName = DNS:${name}`, 'extendedKeyUsage = clientAuth',
    ].join('\n'),
  );
  const now = Date.now();
  const [from, to] = options.expired ? [now - 3 * 86_400_000, now - 86_400_000] : [now - 60_000, now + 86_400_000];
  run([
    'ca', '-batch', '-notext', '-config', file('ca.cnf'), '-extensions', 'client',
    // certs.ts keeps the CA's key beside its certificate, named after it.
    '-cert', pki.caFile, '-keyfile', join(pki.dir, 'test-ca.key'),
    '-startdate', opensslDate(new Date(from)), '-enddate', opensslDate(new Date(to)),
    '-in', file('client.csr'), '-out', file('client.pem'),
  ]);
  const cert = readFileSync(file('client.pem'), 'utf8');
  const parsed = new X509Certificate(cert);
  return { cert, key: readFileSync(file('client.key'), 'utf8'), serial: parsed.serialNumber, notAfterSeconds: Math.floor(Date.parse(parsed.validTo) / 1000) };
}
