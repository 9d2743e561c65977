/**
 * What a platform team relies on when running the sidecar (issue 6): decision logs that explain
 * and never leak, dry-run, reload that never breaks serving, and a graceful SIGTERM. The sidecar
 * runs as its own process (the built CLI) with the embedded SpiceDB; it is called over gRPC the way
 * Envoy calls it.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { stringify } from 'yaml';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { httpCheck, sidecarClient } from '../support/check-client.js';
import type { SidecarClient } from '../support/check-client.js';
import { jwks, makeSigningKey, nowSeconds, signToken } from '../../dev/jwt-fixtures.js';
import type { SigningKey } from '../../dev/jwt-fixtures.js';
import { waitFor } from '../../dev/processes.js';
import { parseExposition } from '../../dev/prometheus.js';
import { startSidecar } from '../support/sidecar.js';
import type { RunningSidecar } from '../support/sidecar.js';

const ISSUER = 'https://mesh.ops.test';
let dir: string;
let key: SigningKey;
let sidecar: RunningSidecar | undefined;
let client: SidecarClient | undefined;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'jwtauth-ops-'));
  key = await makeSigningKey('ES256', 'ops-1');
  writeFileSync(join(dir, 'jwks.json'), JSON.stringify(jwks(key)));
  writeFileSync(join(dir, 'relationships.txt'), 'cloud:cl0#admin@user:alice\n');
});

afterEach(async () => {
  client?.close();
  await sidecar?.stop('SIGKILL');
  sidecar = undefined;
});

function config(overrides: Record<string, unknown> = {}, rules?: unknown[]): Record<string, unknown> {
  return {
    log: { level: 'info' },
    issuers: [{ name: 'mesh', issuer: ISSUER, audience: 'gwadmin', kind: 'internal', jwks: { file: join(dir, 'jwks.json') }, algorithms: ['ES256'] }],
    spicedb: { embedded: { relationshipsFile: join(dir, 'relationships.txt') } },
    inbound: {
      rules: rules ?? [
        {
          name: 'create-namespace',
          match: { http: { methods: ['POST'], path: '/v1/clouds/{cloud}/namespaces' } },
          checks: [{ resource: 'cloud:{path.cloud}', permission: 'create_namespace' }],
        },
      ],
    },
    ...overrides,
  };
}

async function start(configuration: Record<string, unknown>, env: NodeJS.ProcessEnv = {}): Promise<void> {
  sidecar = await startSidecar(configuration, { env });
  client = sidecarClient(sidecar.grpcPort);
}

const token = (sub: string) => signToken(key, { iss: ISSUER, aud: 'gwadmin', sub, iat: nowSeconds(), exp: nowSeconds() + 300 });
const createNamespace = async (sub: string, requestId = `req-${sub}`) =>
  httpCheck('POST', '/v1/clouds/cl0/namespaces', { authorization: `Bearer ${await token(sub)}`, 'x-request-id': requestId });

function decisionLines(): Record<string, unknown>[] {
  return (sidecar?.process.output() ?? '')
    .split('\n')
    .filter((line) => line.includes('"msg":"decision"'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

const status = (response: { status?: { code?: number } }) => response.status?.code ?? 0;

describe('decision logs', () => {
  it('write one JSON line per decision with who, what and why, and never a token or secret', async () => {
    await start(config({ spicedb: { embedded: { relationshipsFile: join(dir, 'relationships.txt') } } }), { UNRELATED_SECRET: 's3cr3t-value' });
    const aliceToken = await token('alice');
    const allowed = await client!.check(httpCheck('POST', '/v1/clouds/cl0/namespaces', { authorization: `Bearer ${aliceToken}`, 'x-request-id': 'req-a' }));
    const denied = await client!.check(await createNamespace('bob', 'req-b'));
    expect(status(allowed)).toBe(0);
    expect(status(denied)).not.toBe(0);
    await waitFor(() => decisionLines().length >= 2, 3_000, () => sidecar!.process.output());

    const [allowLine, denyLine] = decisionLines();
    expect(allowLine).toMatchObject({
      requestId: 'req-a',
      direction: 'inbound',
      rule: 'create-namespace',
      subject: 'alice',
      decision: 'allow',
      reason: 'allowed',
      checks: [{ resource: 'cloud:cl0', permission: 'create_namespace', subject: 'user:alice', result: 'allowed' }],
    });
    expect(typeof allowLine?.latencyMs).toBe('number');
    expect(denyLine).toMatchObject({ requestId: 'req-b', subject: 'bob', decision: 'deny', reason: 'permission_denied', status: 403 });

    const output = sidecar!.process.output();
    for (const secretPart of aliceToken.split('.')) expect(output).not.toContain(secretPart);
    expect(output).not.toContain('s3cr3t-value');
  });

  it('sample allows but always log denials', async () => {
    await start(config({ log: { level: 'info', allowSampleRate: 0 } }));
    for (let i = 0; i < 5; i++) await client!.check(await createNamespace('alice', `allow-${i}`));
    await client!.check(await createNamespace('bob', 'deny-1'));
    await waitFor(() => decisionLines().length >= 1, 3_000, () => sidecar!.process.output());
    await sleep(200);
    expect(decisionLines().map((line) => line.requestId)).toEqual(['deny-1']);
  });
});

describe('dry-run', () => {
  it('globally: computes, logs and counts the denial, but tells Envoy to allow', async () => {
    await start(config({ dryRun: true }));
    const response = await client!.check(await createNamespace('bob', 'dry-1'));
    expect(status(response)).toBe(0);
    // Forged identity headers are still stripped under dry-run.
    expect(response.ok_response?.headers_to_remove).toContain('x-jwtauth-subject');
    await waitFor(() => decisionLines().length >= 1, 3_000, () => sidecar!.process.output());
    expect(decisionLines()[0]).toMatchObject({ decision: 'allow', reason: 'dry_run', wouldDeny: 'permission_denied' });
    expect(await sidecar!.metric('jwtauth_dry_run_would_deny_total{direction="inbound",reason="permission_denied"}')).toBe(1);
  });

  it('per rule: only that rule’s denials pass', async () => {
    await start(
      config({}, [
        { name: 'trial', dryRun: true, match: { http: { methods: ['POST'], path: '/v1/clouds/{cloud}/namespaces' } }, checks: [{ resource: 'cloud:{path.cloud}', permission: 'create_namespace' }] },
        { name: 'enforced', match: { http: { methods: ['DELETE'], path: '/v1/clouds/{cloud}/namespaces' } }, checks: [{ resource: 'cloud:{path.cloud}', permission: 'create_namespace' }] },
      ]),
    );
    const trial = await client!.check(await createNamespace('bob'));
    const enforced = await client!.check(httpCheck('DELETE', '/v1/clouds/cl0/namespaces', { authorization: `Bearer ${await token('bob')}` }));
    expect(status(trial)).toBe(0);
    expect(status(enforced)).not.toBe(0);
    expect(enforced.denied_response?.status?.code).toBe('Forbidden');
  });
});

describe('reload', () => {
  it('swaps in a changed file, keeps the verified-token cache, and counts it', async () => {
    await start(config());
    const before = await createNamespace('alice');
    expect(status(await client!.check(before))).toBe(0);
    const hashBefore = await configHash();

    // The same rule, now for a path the old config did not know.
    writeFileSync(
      sidecar!.configFile,
      stringify(config({}, [{ name: 'create-project', match: { http: { methods: ['POST'], path: '/v2/clouds/{cloud}/projects' } }, checks: [{ resource: 'cloud:{path.cloud}', permission: 'create_namespace' }] }])),
    );
    await waitFor(async () => (await sidecar!.metric('jwtauth_config_reloads_total{result="success"}')) === 1, 5_000, () => sidecar!.process.output());
    expect(await configHash()).not.toBe(hashBefore);

    const hitsBefore = await sidecar!.metric('jwtauth_verified_token_cache_events_total{event="hit"}');
    const same = before.attributes?.request?.http?.header_map;
    const moved = await client!.check({ attributes: { ...before.attributes, request: { http: { method: 'POST', path: '/v2/clouds/cl0/projects', host: 'gateway.test', header_map: same } } } });
    expect(status(moved)).toBe(0);
    expect(status(await client!.check(before))).not.toBe(0);
    // Issuers did not change, so the token verified before the reload was not verified again.
    expect(await sidecar!.metric('jwtauth_verified_token_cache_events_total{event="hit"}')).toBeGreaterThan(hitsBefore);
  });

  it('on SIGHUP rejects a bad file with a logged reason and keeps serving the old configuration', async () => {
    await start(config());
    const hash = await configHash();
    writeFileSync(sidecar!.configFile, 'inbound: { default: maybe }\n');
    sidecar!.process.child.kill('SIGHUP');
    const rejectionLine = (): string | undefined => sidecar!.process.output().split('\n').find((line) => line.includes('reload rejected'));
    // The counter and the log line travel separately (HTTP scrape, stdout pipe): wait for both.
    await waitFor(
      async () => (await sidecar!.metric('jwtauth_config_reloads_total{result="failure"}')) >= 1 && rejectionLine() !== undefined,
      5_000,
      () => sidecar!.process.output(),
    );
    expect(rejectionLine()).toContain('inbound.default: got \\"maybe\\"');
    expect(await configHash()).toBe(hash);
    expect(status(await client!.check(await createNamespace('alice')))).toBe(0);
    expect(await client!.health()).toBe('SERVING');
  });
});

describe('reload that cannot start', () => {
  it('keeps serving the old configuration when the new one is valid but its adapters fail to start', async () => {
    await start(config());
    const hash = await configHash();
    const broken = config();
    (broken.issuers as { jwks: { file: string } }[])[0]!.jwks.file = join(dir, 'missing-jwks.json');
    writeFileSync(sidecar!.configFile, stringify(broken));
    await waitFor(async () => (await sidecar!.metric('jwtauth_config_reloads_total{result="failure"}')) >= 1, 5_000, () => sidecar!.process.output());
    expect(await configHash()).toBe(hash);
    expect(status(await client!.check(await createNamespace('alice')))).toBe(0);
    expect(await client!.health()).toBe('SERVING');
  });
});

describe('SIGTERM', () => {
  it('turns health NOT_SERVING, keeps answering checks while draining, then exits 0', async () => {
    await start(config({ server: { drainSeconds: 1.5 } }));
    expect(await client!.health()).toBe('SERVING');
    expect(await client!.health('envoy.service.auth.v3.Authorization')).toBe('SERVING');
    sidecar!.process.child.kill('SIGTERM');
    await waitFor(async () => (await client!.health()) === 'NOT_SERVING', 2_000, () => sidecar!.process.output());
    // Envoy notices NOT_SERVING at its next health check; until then its checks must still be answered.
    expect(status(await client!.check(await createNamespace('alice')))).toBe(0);
    expect(await sidecar!.process.exited).toBe(0);
  });
});

async function configHash(): Promise<string> {
  const text = await (await fetch(`${sidecar!.admin}/metrics`)).text();
  return parseExposition(text).samples.find((sample) => sample.name === 'jwtauth_config_info' && sample.value === 1)?.labels.hash ?? '';
}
