/**
 * Guarantee: a certificate, key, CA bundle, JWKS file or signing key renewed AT THE SAME PATH (the
 * way cert-manager, Vault agents and SPIRE renew them: a Secret-style `..data` symlink swap) is
 * taken in by the running sidecar within seconds, without a SIGHUP and without failing a request;
 * a renewal that is broken is refused and the last good file keeps serving; and a reload refused
 * because a file it names is not there yet succeeds by itself once the file arrives.
 *
 * The real sidecar process (dist/), answering Checks over gRPC under steady load:
 *   - outbound: service tokens from a token endpoint that authenticates the sidecar by its client
 *     certificate (mutual TLS) and records each certificate's serial, so "the new certificate is
 *     used" is what the token service saw, not what the sidecar says;
 *   - inbound: tokens verified against a JWKS file whose refreshSeconds (60) is far longer than the
 *     waits here, so acceptance of a new key proves the file change was seen, not the timer;
 *   - inbound with SpiceDB: the preshared key read from a file, which SpiceDB accepts or refuses.
 *
 * Nothing here times how fast a rotation lands; every wait is a bounded poll for an outcome.
 */
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { readFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { calculateJwkThumbprint, decodeProtectedHeader, exportJWK } from 'jose';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestPki } from '../support/certs.js';
import type { TestPki } from '../support/certs.js';
import { httpCheck, sidecarClient } from '../support/check-client.js';
import type { SidecarClient } from '../support/check-client.js';
import { closeNewestFirst } from '../support/closers.js';
import { createConfigMapVolume } from '../support/configmap-volume.js';
import type { ConfigMapVolume } from '../support/configmap-volume.js';
import { jwks, makeSigningKey, nowSeconds, signToken } from '../../dev/jwt-fixtures.js';
import type { SigningKey } from '../../dev/jwt-fixtures.js';
import { relationships, SCHEMA } from '../../dev/hardening/fixtures.js';
import { startMtlsTokenService } from '../support/mtls-token-service.js';
import type { MtlsTokenService } from '../support/mtls-token-service.js';
import { renewClientCertificate } from '../support/rotating-pki.js';
import { waitFor } from '../../dev/processes.js';
import { scrapeMetrics } from '../../dev/prometheus.js';
import { launchSidecar } from '../../dev/sidecar.js';
import { startSpicedb } from '../../dev/spicedb.js';
import type { SidecarProcess } from '../../dev/sidecar.js';

/** Only says when to call a rotation lost; the watch debounces 200 ms and a rebuild takes milliseconds. */
const SEEN_WITHIN_MS = 15_000;
/** Steady load: a few callers, each pausing between Checks. */
const WORKERS = 3;
const PAUSE_MS = 10;
/** The load runs this long around each change, so Checks are in flight when the new files land. */
const LOAD_AROUND_MS = 400;

const ISSUER = 'https://files.example.test';
const RELOAD_SUCCESS = 'jwtauth_config_reloads_total{result="success"}';
const RELOAD_FAILURE = 'jwtauth_config_reloads_total{result="failure"}';
const OUTBOUND = { direction: 'outbound', audience: 'vmcontroller' };

const closers: Array<() => Promise<unknown> | unknown> = [];
afterAll(async () => {
  await closeNewestFirst(closers);
});

// --- the sidecar and what it is asked

async function startOn(config: Record<string, unknown>, name: string): Promise<{ sidecar: SidecarProcess; client: SidecarClient; configMap: ConfigMapVolume }> {
  // The configuration itself is a ConfigMap too, as in a pod.
  const configMap = createConfigMapVolume({ 'jwtauth.yaml': stringify(config) });
  const sidecar = await launchSidecar({ configFile: configMap.path('jwtauth.yaml'), name });
  closers.push(() => sidecar.stop('SIGKILL'));
  const client = sidecarClient(sidecar.grpcPort);
  closers.push(() => client.close());
  return { sidecar, client, configMap };
}

function baseConfig(sections: Record<string, unknown>): Record<string, unknown> {
  return {
    server: { drainSeconds: 1 },
    // info: each reload and refusal is logged, which failure messages show; no allow decisions.
    log: { level: 'info', allowSampleRate: 0 },
    service: { name: 'gwadmin' },
    outbound: { upstreams: [{ audience: 'vmcontroller' }] },
    ...sections,
  };
}

const sidecarOutput = (sidecar: SidecarProcess): string => sidecar.process.output().slice(-6000);

async function sample(sidecar: SidecarProcess, series: string): Promise<number> {
  return (await sidecar.metrics()).series.get(series) ?? 0;
}

async function certificateNotAfter(sidecar: SidecarProcess, use: string): Promise<number | undefined> {
  const metrics = await scrapeMetrics(`${sidecar.admin}/metrics`);
  return metrics.samples.find((s) => s.name === 'jwtauth_certificate_not_after_seconds' && s.labels.use === use)?.value;
}

/** The Bearer token an allowed outbound Check attaches, or undefined when it was not allowed. */
async function outboundToken(client: SidecarClient): Promise<string | undefined> {
  const response = await client.check(httpCheck('GET', '/v1/vms', {}, OUTBOUND));
  if (response.status?.code !== 0) return undefined;
  const header = response.ok_response?.headers?.find((option) => option.header?.key?.toLowerCase() === 'authorization')?.header?.value;
  return header?.replace(/^Bearer /, '');
}

/** Outcomes of Checks made until stopped: each `ask` resolves true when the Check was answered as expected. */
function steadyLoad(ask: () => Promise<boolean>): { stop(): Promise<{ total: number; failed: number }> } {
  let stopping = false;
  let total = 0;
  let failed = 0;
  const worker = async (): Promise<void> => {
    while (!stopping) {
      total++;
      if (!(await ask().catch(() => false))) failed++;
      await sleep(PAUSE_MS);
    }
  };
  const workers = Promise.all(Array.from({ length: WORKERS }, worker));
  return {
    async stop() {
      stopping = true;
      await workers;
      return { total, failed };
    },
  };
}

/** Runs `change` under load and waits for `seen`; no Check may fail before, during or after. */
async function rotateUnderLoad(ask: () => Promise<boolean>, change: () => void, seen: () => Promise<boolean>, describeFailure: () => string): Promise<void> {
  const load = steadyLoad(ask);
  await sleep(LOAD_AROUND_MS);
  change();
  await waitFor(seen, SEEN_WITHIN_MS, describeFailure);
  await sleep(LOAD_AROUND_MS);
  const { total, failed } = await load.stop();
  expect(total, 'the load must have run').toBeGreaterThan(10);
  expect(failed, `Checks failed around the rotation\n${describeFailure()}`).toBe(0);
}

// --- mutual TLS to the token service, and the JWKS file

describe('rotation of the mTLS client certificate, key and CA, and of a JWKS file', () => {
  let pki: TestPki;
  let tokenService: MtlsTokenService;
  let tls: ConfigMapVolume;
  let jwksVolume: ConfigMapVolume;
  let sidecar: SidecarProcess;
  let client: SidecarClient;
  let firstKey: SigningKey;
  let caPem: string;
  let otherCaPem: string;
  /** The certificate and key the sidecar should be presenting now. */
  let current: { cert: string; key: string; ca: string };

  const inboundToken = (key: SigningKey): Promise<string> =>
    signToken(key, { iss: ISSUER, sub: 'vmcontroller', aud: 'gwadmin', iat: nowSeconds(), exp: nowSeconds() + 600 });
  const inboundAllowed = async (token: string): Promise<boolean> =>
    (await client.check(httpCheck('GET', '/api/things', { authorization: `Bearer ${token}` }, { direction: 'inbound' }))).status?.code === 0;
  const outboundAllowed = async (): Promise<boolean> => (await outboundToken(client)) !== undefined;
  const publishTls = (next: { cert: string; key: string; ca: string }): void => {
    tls.update({ 'tls.crt': next.cert, 'tls.key': next.key, 'ca.crt': next.ca });
  };

  beforeAll(async () => {
    pki = createTestPki(['gwadmin']);
    closers.push(() => pki.remove());
    tokenService = await startMtlsTokenService(pki);
    closers.push(() => tokenService.close());
    const gwadmin = pki.clients.gwadmin;
    if (!gwadmin) throw new Error('the test PKI has no gwadmin');
    caPem = readFileSync(pki.caFile, 'utf8');
    otherCaPem = readFileSync(pki.otherCaFile, 'utf8');
    current = { cert: readFileSync(gwadmin.certFile, 'utf8'), key: readFileSync(gwadmin.keyFile, 'utf8'), ca: caPem };
    // A Secret-style volume, as cert-manager's: tls.crt, tls.key and ca.crt behind one `..data` link.
    tls = createConfigMapVolume({ 'tls.crt': current.cert, 'tls.key': current.key, 'ca.crt': current.ca });
    firstKey = await makeSigningKey('ES256', 'files-1');
    jwksVolume = createConfigMapVolume({ 'jwks.json': JSON.stringify(jwks(firstKey)) });
    ({ sidecar, client } = await startOn(
      baseConfig({
        issuers: [
          // refreshSeconds 60 (the default): far beyond every wait below.
          { name: 'files', issuer: ISSUER, audience: 'gwadmin', kind: 'internal', subjectType: 'service', jwks: { file: jwksVolume.path('jwks.json') }, algorithms: ['ES256'] },
        ],
        tokens: {
          source: {
            kind: 'exchange',
            tokenEndpoint: tokenService.tokenEndpoint,
            clientCertFile: tls.path('tls.crt'),
            clientKey: { file: tls.path('tls.key') },
            caFile: tls.path('ca.crt'),
          },
        },
        inbound: { default: 'deny', rules: [{ name: 'api', match: { http: { path: '/api/**' } }, auth: 'token' }] },
      }),
      'rotation-mtls',
    ));
    expect(await outboundAllowed(), sidecarOutput(sidecar)).toBe(true);
  }, 60_000);

  it('presents a renewed client certificate, key and CA bundle after each of two `..data` swaps, failing no Check', async () => {
    for (const round of [1, 2]) {
      const renewed = renewClientCertificate(pki, 'gwadmin');
      // The trust bundle changes too: another CA beside the one the token service's certificate chains to.
      const ca = round === 1 ? `${caPem}${otherCaPem}` : `${otherCaPem}${caPem}`;
      const before = await sample(sidecar, RELOAD_SUCCESS);
      await rotateUnderLoad(
        outboundAllowed,
        () => publishTls({ cert: renewed.cert, key: renewed.key, ca }),
        async () => tokenService.serials.includes(renewed.serial),
        () => `round ${round}: the token service never saw serial ${renewed.serial} (saw ${JSON.stringify([...new Set(tokenService.serials)])})\n${sidecarOutput(sidecar)}`,
      );
      current = { cert: renewed.cert, key: renewed.key, ca };
      expect(await sample(sidecar, RELOAD_SUCCESS)).toBeGreaterThan(before);
      expect(await certificateNotAfter(sidecar, 'tokens.source.clientCertFile')).toBe(renewed.notAfterSeconds);
    }
  }, 60_000);

  it('accepts a token signed by a key added to the JWKS file within seconds, long before its refreshSeconds', async () => {
    const secondKey = await makeSigningKey('ES256', 'files-2');
    const oldToken = await inboundToken(firstKey);
    const newToken = await inboundToken(secondKey);
    expect(await inboundAllowed(newToken), 'a key not yet published must be refused').toBe(false);
    await rotateUnderLoad(
      () => inboundAllowed(oldToken),
      () => jwksVolume.update({ 'jwks.json': JSON.stringify(jwks(firstKey, secondKey)) }),
      () => inboundAllowed(newToken),
      () => `a token signed by the added key is still refused\n${sidecarOutput(sidecar)}`,
    );
  }, 60_000);

  it('refuses a renewal whose key does not match, that has expired, or does not parse; the last good certificate keeps serving', async () => {
    const good = await certificateNotAfter(sidecar, 'tokens.source.clientCertFile');
    const mismatched = renewClientCertificate(pki, 'gwadmin');
    const expired = renewClientCertificate(pki, 'gwadmin', { expired: true });
    const broken: Array<{ what: string; files: { cert: string; key: string; ca: string }; logged: RegExp }> = [
      { what: 'a key that is not the certificate’s', files: { ...current, cert: mismatched.cert }, logged: /do not load together/ },
      { what: 'an expired certificate', files: { ...current, cert: expired.cert, key: expired.key }, logged: /expired at/ },
      { what: 'a certificate that does not parse', files: { ...current, cert: '-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n' }, logged: /tokens\.source/ },
    ];
    for (const { what, files, logged } of broken) {
      const failures = await sample(sidecar, RELOAD_FAILURE);
      const logFrom = sidecar.process.output().length;
      await rotateUnderLoad(
        outboundAllowed,
        () => publishTls(files),
        async () => (await sample(sidecar, RELOAD_FAILURE)) > failures,
        () => `${what}: no refused reload counted\n${sidecarOutput(sidecar)}`,
      );
      const log = sidecar.process.output().slice(logFrom);
      const refusal = log.split('\n').find((line) => line.includes('reload rejected'));
      expect(refusal, `${what}: the refusal must be logged\n${log}`).toBeDefined();
      expect(refusal, `${what}: the log must say what is wrong`).toMatch(logged);
      expect(refusal, `${what}: the log must name the changed file`).toContain(tls.path('tls.crt'));
      expect(refusal, `${what}: never the key's content`).not.toContain('PRIVATE KEY');
      expect(await certificateNotAfter(sidecar, 'tokens.source.clientCertFile'), `${what}: the gauge still shows the certificate in use`).toBe(good);
      expect(tokenService.serials, `${what}: never presented`).not.toContain(mismatched.serial);
      expect(tokenService.serials, `${what}: never presented`).not.toContain(expired.serial);
    }
    // A good renewal after the broken ones is taken in: refusals leave nothing behind.
    const renewed = renewClientCertificate(pki, 'gwadmin');
    await rotateUnderLoad(
      outboundAllowed,
      () => publishTls({ ...current, cert: renewed.cert, key: renewed.key }),
      async () => tokenService.serials.includes(renewed.serial),
      () => `the good renewal after the refused ones was never presented\n${sidecarOutput(sidecar)}`,
    );
  }, 90_000);
});

// --- signing keys, and a reload that names a file before it arrives

describe('rotation of a signing key file, and a reload waiting for its file', () => {
  let secret: ConfigMapVolume;
  let sidecar: SidecarProcess;
  let client: SidecarClient;
  let configMap: ConfigMapVolume;
  let config: (keys: ReadonlyArray<{ readonly file: string; readonly notBefore?: string }>) => Record<string, unknown>;

  const pem = (): string => generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const kidOf = async (privatePem: string): Promise<string> => calculateJwkThumbprint(await exportJWK(createPublicKey(privatePem)), 'sha256');
  const publishedKids = async (): Promise<string[]> => {
    const document = (await (await fetch(`${sidecar.admin}/.well-known/jwks.json`)).json()) as { keys: Array<{ kid: string }> };
    return document.keys.map((key) => key.kid);
  };
  const mintedKid = async (): Promise<string | undefined> => {
    const token = await outboundToken(client);
    return token === undefined ? undefined : decodeProtectedHeader(token).kid;
  };

  beforeAll(async () => {
    secret = createConfigMapVolume({ 'signing-0.pem': pem() });
    config = (keys) =>
      baseConfig({ tokens: { source: { kind: 'mint', issuer: 'https://gwadmin.example.test', keys: keys.map((key) => ({ ...key, file: secret.path(key.file) })) } } });
    ({ sidecar, client, configMap } = await startOn(config([{ file: 'signing-0.pem' }]), 'rotation-mint'));
    expect(await mintedKid(), sidecarOutput(sidecar)).toBeDefined();
  }, 60_000);

  it('signs with a signing key renewed at the same path, failing no Check', async () => {
    const renewed = pem();
    const kid = await kidOf(renewed);
    await rotateUnderLoad(
      async () => (await mintedKid()) !== undefined,
      () => secret.update({ 'signing-0.pem': renewed }),
      async () => (await mintedKid()) === kid,
      () => `tokens are still not signed by the renewed key ${kid}\n${sidecarOutput(sidecar)}`,
    );
    expect(await publishedKids()).toEqual([kid]);
  }, 60_000);

  it('retries a reload refused for a signing key file that is not there yet once the file arrives', async () => {
    const failures = await sample(sidecar, RELOAD_FAILURE);
    const successes = await sample(sidecar, RELOAD_SUCCESS);
    // The ConfigMap names a second key before the Secret holding it is updated. It signs from a
    // minute on, so it is published at once (publishBeforeUseSeconds is 300).
    const notBefore = new Date(Date.now() + 60_000).toISOString();
    configMap.update({ 'jwtauth.yaml': stringify(config([{ file: 'signing-0.pem' }, { file: 'signing-1.pem', notBefore }])) });
    await waitFor(async () => (await sample(sidecar, RELOAD_FAILURE)) > failures, SEEN_WITHIN_MS, () => `the reload was not refused\n${sidecarOutput(sidecar)}`);
    expect(sidecarOutput(sidecar)).toMatch(/tokens\.source\.keys\[1\]\.file: .*ENOENT/);
    expect(await sample(sidecar, RELOAD_SUCCESS)).toBe(successes);
    const current = readFileSync(secret.path('signing-0.pem'), 'utf8');
    const added = pem();
    secret.update({ 'signing-0.pem': current, 'signing-1.pem': added });
    // kubelet links a key new to the volume once `..data` points at the version holding it.
    symlinkSync(join('..data', 'signing-1.pem'), secret.path('signing-1.pem'));
    await waitFor(
      async () => (await publishedKids()).includes(await kidOf(added)),
      SEEN_WITHIN_MS,
      () => `the key that arrived late is not published; no reload followed it\n${sidecarOutput(sidecar)}`,
    );
    expect(await sample(sidecar, RELOAD_SUCCESS)).toBeGreaterThan(successes);
  }, 60_000);
});

// --- the SpiceDB preshared key

describe('rotation of the SpiceDB preshared-key file', () => {
  it('calls SpiceDB with the key the file holds now, without a SIGHUP', async () => {
    // The test SpiceDB takes one key, so the rotation is shown both ways: to a key it refuses, and back.
    const spicedb = await startSpicedb({ schema: SCHEMA, relationships: relationships(4) });
    closers.push(() => spicedb.stop());
    const secret = createConfigMapVolume({ 'spicedb-key': `${spicedb.presharedKey}\n` });
    const key = await makeSigningKey('ES256', 'files-1');
    const jwksVolume = createConfigMapVolume({ 'jwks.json': JSON.stringify(jwks(key)) });
    const { sidecar, client } = await startOn(
      baseConfig({
        outbound: undefined,
        issuers: [{ name: 'files', issuer: ISSUER, audience: 'gwadmin', kind: 'external', subjectType: 'user', jwks: { file: jwksVolume.path('jwks.json') }, algorithms: ['ES256'] }],
        // No decision cache: every Check asks SpiceDB with the key in use.
        spicedb: { endpoint: spicedb.endpoint, tls: false, presharedKey: { file: secret.path('spicedb-key') }, decisionCache: { freshness: 'ttl', ttlMs: 0 } },
        inbound: { default: 'deny', rules: [{ name: 'view-cloud', match: { http: { path: '/v1/clouds/{cloud}/**' } }, checks: [{ resource: 'cloud:{path.cloud}', permission: 'view' }] }] },
      }),
      'rotation-spicedb',
    );
    const alice = await signToken(key, { iss: ISSUER, sub: 'alice', aud: 'gwadmin', iat: nowSeconds(), exp: nowSeconds() + 600 });
    const allowed = async (): Promise<boolean> =>
      (await client.check(httpCheck('GET', '/v1/clouds/cl0/vms', { authorization: `Bearer ${alice}` }, { direction: 'inbound' }))).status?.code === 0;
    expect(await allowed(), sidecarOutput(sidecar)).toBe(true);

    secret.update({ 'spicedb-key': 'a-key-spicedb-does-not-know\n' });
    await waitFor(async () => !(await allowed()), SEEN_WITHIN_MS, () => `still allowed: the renewed key file was not taken in\n${sidecarOutput(sidecar)}`);

    secret.update({ 'spicedb-key': `${spicedb.presharedKey}\n` });
    await waitFor(allowed, SEEN_WITHIN_MS, () => `never allowed again after the right key came back\n${sidecarOutput(sidecar)}`);
    expect(sidecarOutput(sidecar), 'the key itself is never logged').not.toContain(spicedb.presharedKey);
  }, 60_000);
});

// --- worker mode: the primary watches, every worker reloads

describe('rotation in worker mode', () => {
  it('every worker takes in a key added to the JWKS file', async () => {
    const first = await makeSigningKey('ES256', 'workers-1');
    const second = await makeSigningKey('ES256', 'workers-2');
    const jwksVolume = createConfigMapVolume({ 'jwks.json': JSON.stringify(jwks(first)) });
    const { sidecar, client: shared } = await startOn(
      baseConfig({
        server: { drainSeconds: 1, workers: 2 },
        outbound: undefined,
        issuers: [{ name: 'files', issuer: ISSUER, audience: 'gwadmin', kind: 'internal', subjectType: 'service', jwks: { file: jwksVolume.path('jwks.json') }, algorithms: ['ES256'] }],
        inbound: { default: 'deny', rules: [{ name: 'api', match: { http: { path: '/api/**' } }, auth: 'token' }] },
      }),
      'rotation-workers',
    );
    shared.close();
    // A connection of each client's own, so the Checks spread over both workers.
    const clients = Array.from({ length: 8 }, () => sidecarClient(sidecar.grpcPort, { ownConnection: true }));
    closers.push(() => clients.forEach((client) => client.close()));
    const token = await signToken(second, { iss: ISSUER, sub: 'vmcontroller', aud: 'gwadmin', iat: nowSeconds(), exp: nowSeconds() + 600 });
    const acceptedByAll = async (): Promise<boolean> => {
      const answers = await Promise.all(clients.map((client) => client.check(httpCheck('GET', '/api/things', { authorization: `Bearer ${token}` }, { direction: 'inbound' }))));
      return answers.every((answer) => answer.status?.code === 0);
    };
    expect(await acceptedByAll(), 'a key not yet published must be refused').toBe(false);
    jwksVolume.update({ 'jwks.json': JSON.stringify(jwks(first, second)) });
    await waitFor(acceptedByAll, SEEN_WITHIN_MS, () => `some worker still refuses the added key\n${sidecarOutput(sidecar)}`);
  }, 60_000);
});
