/**
 * Test PKI made at test time with the `openssl` CLI: a CA, a server certificate for
 * 127.0.0.1/localhost, client certificates for a service the token service knows and for one it
 * does not, and an unrelated CA (to make TLS verification fail on purpose).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

interface CertPair {
  readonly certFile: string;
  readonly keyFile: string;
}

export interface TestPki {
  readonly dir: string;
  readonly caFile: string;
  readonly server: CertPair;
  /** Client certificates by service name (CN and DNS SAN are the name). */
  readonly clients: Readonly<Record<string, CertPair>>;
  /** A CA that signed nothing used here. */
  readonly otherCaFile: string;
  remove(): void;
}

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

function makeCa(dir: string, name: string, days: number): { cert: string; key: string } {
  const key = join(dir, `${name}.key`);
  const cert = join(dir, `${name}.pem`);
  openssl(dir, ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', key]);
  openssl(dir, [
    'req', '-x509', '-new', '-key', key, '-subj', `/CN=${name}`, '-days', String(days), '-out', cert,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  return { cert, key };
}

function issue(dir: string, ca: { cert: string; key: string }, name: string, extensions: string, days: number): CertPair {
  const keyFile = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const certFile = join(dir, `${name}.pem`);
  const ext = join(dir, `${name}.ext`);
  writeFileSync(ext, `basicConstraints=CA:FALSE\n${extensions}\n`);
  openssl(dir, ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', keyFile]);
  openssl(dir, ['req', '-new', '-key', keyFile, '-subj', `/CN=${name}`, '-out', csr]);
  openssl(dir, ['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-days', String(days), '-out', certFile, '-extfile', ext]);
  return { certFile, keyFile };
}

/**
 * `validDays`: how long the issued certificates live (the CAs a day longer). A day by default; a
 * test that watches expiry alerts uses a production-like lifetime, so a healthy sidecar fires none.
 */
export function createTestPki(clientNames: readonly string[] = ['gwadmin', 'intruder'], validDays = 1): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'jwtauth-pki-'));
  const ca = makeCa(dir, 'test-ca', validDays + 1);
  const other = makeCa(dir, 'other-ca', validDays + 1);
  const server = issue(dir, ca, 'server', 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth', validDays);
  const clients: Record<string, CertPair> = {};
  for (const name of clientNames) clients[name] = issue(dir, ca, name, `subjectAltName=DNS:${name}\nextendedKeyUsage=clientAuth`, validDays);
  return {
    dir,
    caFile: ca.cert,
    server,
    clients,
    otherCaFile: other.cert,
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
