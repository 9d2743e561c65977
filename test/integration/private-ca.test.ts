/**
 * Guarantee: every TLS connection the sidecar opens (an issuer's JWKS, SpiceDB, the token service)
 * can trust a private CA named by `caFile`, and without that CA, or with the wrong one, it fails
 * closed and says the failure is TLS. The PKI is generated at test time; the servers are real:
 * node:https for the JWKS, the pinned SpiceDB serving gRPC over TLS, oidc-provider over mTLS.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:https';
import type { Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join, relative } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSpicedb } from '../../dev/spicedb.js';
import type { SpicedbServer } from '../../dev/spicedb.js';
import { waitFor } from '../../dev/processes.js';
import { ConfigError, validateConfig } from '../../src/config/load.js';
import type { Closable, PermissionChecker, PermissionQuery } from '../../src/core/ports.js';
import { issuersSchema } from '../../src/identity/config.js';
import { createTokenVerifier } from '../../src/identity/token-verifier.js';
import { preflight } from '../../src/lifecycle/preflight.js';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import { spicedbSchema } from '../../src/spicedb/config.js';
import { createPermissionChecker } from '../../src/spicedb/permission-checker.js';
import { createTokenSource } from '../../src/tokens/token-source.js';
import { createTestPki } from '../support/certs.js';
import type { TestPki } from '../support/certs.js';
import { jwks, makeSigningKey, nowSeconds, signToken } from '../../dev/jwt-fixtures.js';
import type { SigningKey } from '../../dev/jwt-fixtures.js';
import { startOAuthServer } from '../support/oauth-server.js';
import { exchangeTokensConfig } from '../support/exchange-source.js';

const ISS = 'https://corp.test';
const silent = pino({ level: 'silent' });
const closers: (() => Promise<void> | void)[] = [];
let pki: TestPki;

beforeAll(() => {
  pki = createTestPki(['gwadmin']);
});
afterAll(async () => {
  for (const close of closers.splice(0).reverse()) await close();
  pki?.remove();
});

interface LogLine {
  readonly msg: string;
  readonly error?: string;
}

describe('issuer JWKS over HTTPS with a private CA', () => {
  let key: SigningKey;
  let url: string;
  /** Requests that got through the TLS handshake. */
  let served = 0;
  let lastAccept: string | undefined;
  /** What the JWKS endpoint does: serve the keys, never answer, answer a body over 1 MiB, or redirect. */
  let behaviour: 'keys' | 'stall' | 'oversized' | 'redirect' = 'keys';

  beforeAll(async () => {
    key = await makeSigningKey('ES256');
    const body = JSON.stringify(jwks(key));
    const server: Server = createServer({ cert: readFileSync(pki.server.certFile), key: readFileSync(pki.server.keyFile) }, (request, response) => {
      served++;
      lastAccept = request.headers.accept;
      if (behaviour === 'stall') return;
      if (behaviour === 'redirect') response.writeHead(302, { location: '/elsewhere' }).end();
      else if (behaviour === 'oversized') response.writeHead(200).end(JSON.stringify({ keys: [], padding: 'x'.repeat(1 << 20) }));
      else response.writeHead(200, { 'content-type': 'application/jwk-set+json' }).end(body);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    closers.push(() => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    });
    url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`;
  });

  /** A verifier for one issuer at `url`, with the log lines and metrics it produces. */
  async function verifierTrusting(caFile: string | undefined, fetchTimeoutMs = 2000) {
    const lines: LogLine[] = [];
    const logger = createLogger({ level: 'debug', destination: { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) } });
    const metrics = new Metrics({ processMetrics: false });
    const issuers = issuersSchema.parse([
      { name: 'corp', issuer: ISS, audience: 'gw', kind: 'external', jwks: { url, refreshSeconds: 300, cooldownSeconds: 30, ...(caFile ? { caFile } : {}) } },
    ]);
    const verifier = await createTokenVerifier(issuers, { metrics, logger, baseDir: pki.dir, fetchTimeoutMs });
    closers.push(() => verifier.close());
    return { verifier, lines, metrics };
  }

  const token = () => signToken(key, { iss: ISS, aud: 'gw', sub: 'alice', iat: nowSeconds(), exp: nowSeconds() + 300 });

  async function failedFetches(metrics: Metrics): Promise<number> {
    const metric = (await metrics.registry.getMetricsAsJSON()).find((m) => m.name === 'jwtauth_jwks_refreshes_total');
    return metric?.values.find((value) => value.labels.issuer === 'corp' && value.labels.result === 'failure')?.value ?? 0;
  }

  it('with jwks.caFile (relative to the config file) the keys load and a token verifies', async () => {
    const { verifier } = await verifierTrusting(relative(pki.dir, pki.caFile));
    expect(verifier.ready()).toBe(true);
    expect(await verifier.verify(await token())).toMatchObject({ ok: true, value: { subject: 'alice', issuer: 'corp' } });
  });

  it('with the system roots it fails closed: tokens get keys_unavailable and the log names the TLS failure', async () => {
    const before = served;
    const { verifier, lines, metrics } = await verifierTrusting(undefined);
    expect(verifier.ready()).toBe(false);
    expect(await verifier.verify(await token())).toMatchObject({ ok: false, reason: 'keys_unavailable' });
    expect(lines.find((line) => line.error !== undefined)?.error).toMatch(/^cannot fetch the JWKS: TLS failed: UNABLE_TO_VERIFY_LEAF_SIGNATURE /);
    expect(await failedFetches(metrics)).toBeGreaterThan(0);
    expect(served).toBe(before);
  });

  it('with another CA it fails closed with a clear TLS reason, and keeps failing on every retry', async () => {
    const before = served;
    const { verifier, lines } = await verifierTrusting(pki.otherCaFile);
    expect(await verifier.verify(await token())).toMatchObject({ ok: false, reason: 'keys_unavailable' });
    // The quick retries at start-up must not get through either; by the third one it is a warning.
    await waitFor(() => lines.some((line) => /no keys yet/.test(line.msg)), 10_000, () => JSON.stringify(lines));
    const errors = lines.flatMap((line) => (line.error === undefined ? [] : [line.error]));
    expect(errors.length).toBeGreaterThanOrEqual(3);
    for (const error of errors) expect(error).toMatch(/^cannot fetch the JWKS: TLS failed: UNABLE_TO_VERIFY_LEAF_SIGNATURE /);
    expect(await verifier.verify(await token())).toMatchObject({ ok: false, reason: 'keys_unavailable' });
    expect(served).toBe(before);
  });

  it('over the private CA the fetch keeps its limits: accept header, deadline, no redirects, 1 MiB cap', async () => {
    const firstError = async (fetchTimeoutMs?: number): Promise<string | undefined> => {
      const { lines } = await verifierTrusting(pki.caFile, fetchTimeoutMs);
      return lines.find((line) => line.error !== undefined)?.error;
    };
    try {
      behaviour = 'stall';
      const started = Date.now();
      expect(await firstError(300)).toBe('cannot fetch the JWKS: no answer in time (TimeoutError)');
      expect(Date.now() - started).toBeLessThan(2000);
      behaviour = 'redirect';
      expect(await firstError()).toBe('the JWKS endpoint answered HTTP 302');
      behaviour = 'oversized';
      expect(await firstError()).toBe('JWKS larger than 1 MiB');
    } finally {
      behaviour = 'keys';
    }
    expect(lastAccept).toBe('application/jwk-set+json, application/json');
  });

  it('a jwks.caFile that is missing or holds no certificate is a configuration error, named by the preflight', async () => {
    const notPem = join(pki.dir, 'not-a-ca.pem');
    writeFileSync(notPem, 'this is not a certificate\n');
    const issuer = (caFile: string) => ({ name: 'corp', issuer: ISS, audience: 'gw', kind: 'external', jwks: { url, caFile } });
    const loaded = validateConfig({ inbound: {}, issuers: [issuer('missing.pem'), { ...issuer(notPem), name: 'other', issuer: 'https://other.test' }] }, 'test', pki.dir);
    const problems = await preflight(loaded).then(
      () => [],
      (error: unknown) => (error instanceof ConfigError ? error.problems : [String(error)]),
    );
    expect(problems).toContainEqual(`issuers[0] (corp).jwks.caFile: cannot read ${join(pki.dir, 'missing.pem')}: ENOENT`);
    expect(problems).toContainEqual(`issuers[1] (other).jwks.caFile: ${notPem} holds no PEM certificate`);
    await expect(createTokenVerifier(issuersSchema.parse([issuer(notPem)]), { metrics: new Metrics({ processMetrics: false }), logger: silent, baseDir: pki.dir })).rejects.toThrow(
      /issuer corp: jwks\.caFile: .* holds no PEM certificate/,
    );
  });

  it('a caFile with a plaintext JWKS URL is refused at load: the CA would never be used', () => {
    const parsed = issuersSchema.safeParse([{ name: 'corp', issuer: ISS, audience: 'gw', kind: 'external', jwks: { url: 'http://127.0.0.1:1/jwks', caFile: 'ca.pem' } }]);
    expect(parsed.success).toBe(false);
    expect(parsed.error?.issues[0]).toMatchObject({ path: [0, 'jwks', 'caFile'], message: 'caFile needs an https url' });
  });
});

describe('SpiceDB over TLS with a private CA', () => {
  const SCHEMA = 'definition user {}\ndefinition doc {\n  relation viewer: user\n  permission view = viewer\n}\n';
  let spicedb: SpicedbServer;
  let keyFile: string;

  beforeAll(async () => {
    spicedb = await startSpicedb({
      schema: SCHEMA,
      relationships: 'doc:d1#viewer@user:alice',
      name: 'spicedb-tls',
      tls: { certFile: pki.server.certFile, keyFile: pki.server.keyFile, caFile: pki.caFile },
    });
    closers.push(() => spicedb.stop());
    keyFile = join(pki.dir, 'spicedb-preshared-key');
    writeFileSync(keyFile, spicedb.presharedKey);
  });

  async function checkerTrusting(caFile: string): Promise<PermissionChecker & Closable> {
    const config = spicedbSchema.parse({ endpoint: spicedb.endpoint, presharedKey: { file: keyFile }, tls: { caFile }, deadlineMs: 3000 });
    const checker = await createPermissionChecker(config, { metrics: new Metrics({ processMetrics: false }), logger: silent, baseDir: pki.dir });
    closers.push(() => checker.close());
    return checker;
  }

  const query = (user: string): PermissionQuery => ({
    resource: { type: 'doc', id: 'd1' },
    permission: 'view',
    subject: { type: 'user', id: user },
    consistency: { kind: 'fully_consistent' },
  });

  it('with tls.caFile the checks reach SpiceDB and answer both ways', async () => {
    const checker = await checkerTrusting(relative(pki.dir, pki.caFile));
    expect(await checker.check(query('alice'))).toMatchObject({ ok: true, value: { permissionship: 'allowed' } });
    expect(await checker.check(query('bob'))).toMatchObject({ ok: true, value: { permissionship: 'denied' } });
  });

  it('with tls: true (the system roots) the private CA is not trusted: every check fails closed, saying TLS failed', async () => {
    const config = spicedbSchema.parse({ endpoint: spicedb.endpoint, presharedKey: { file: keyFile }, tls: true, deadlineMs: 3000 });
    const checker = await createPermissionChecker(config, { metrics: new Metrics({ processMetrics: false }), logger: silent, baseDir: pki.dir });
    closers.push(() => checker.close());
    const answer = await checker.check(query('alice'));
    expect(answer).toMatchObject({ ok: false, reason: 'permission_backend_unavailable' });
    expect(!answer.ok && answer.detail).toMatch(/^TLS to SpiceDB failed: /);
  });

  it('with another CA every check fails closed as permission_backend_unavailable, saying TLS failed and why', async () => {
    const checker = await checkerTrusting(pki.otherCaFile);
    for (const user of ['alice', 'bob']) {
      const answer = await checker.check(query(user));
      expect(answer).toMatchObject({ ok: false, reason: 'permission_backend_unavailable' });
      expect(!answer.ok && answer.detail).toMatch(/^TLS to SpiceDB failed: .*unable to verify the first certificate/);
    }
  });
});

describe('token service over a private CA', () => {
  it('an exchange source trusting another CA fails with token_source_tls_error naming the cause', async () => {
    const server = await startOAuthServer({ pki, clients: ['gwadmin'], audiences: ['vmcontroller'], accessTokenTtlSeconds: 300 });
    closers.push(() => server.close());
    const config = exchangeTokensConfig(pki, server.tokenEndpoint, { caFile: pki.otherCaFile });
    const source = await createTokenSource(config, { serviceName: 'gwadmin', metrics: new Metrics({ processMetrics: false }), logger: silent, baseDir: pki.dir, uncached: true });
    closers.push(() => source.close());
    const before = server.requests;
    const result = await source.issue({ kind: 'service', audience: 'vmcontroller' });
    expect(result).toMatchObject({ ok: false, reason: 'token_source_tls_error' });
    expect(!result.ok && result.detail).toMatch(/^token service: TLS failed: (SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE) /);
    expect(server.requests).toBe(before);
  });
});
