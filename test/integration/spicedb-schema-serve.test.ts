/**
 * Guarantee: with a SpiceDB server, the running rules are checked against the schema that server
 * holds. A rule naming a permission the schema lacks makes the sidecar not ready (never a silent
 * 403 on every request), and a reload that the server contradicts is refused. A server that cannot
 * be reached at start-up never stops the sidecar from starting: the check happens at the first
 * successful contact. The state is visible in /readyz and jwtauth_schema_conformance.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfigFile } from '../../src/config/load.js';
import { createLogger } from '../../src/observability/logger.js';
import { PACKAGE_ROOT } from '../../src/base/package-root.js';
import { serve } from '../../src/serve.js';
import type { RunningSidecar } from '../../src/serve.js';
import { freePort } from '../../dev/ports.js';
import { waitFor } from '../../dev/processes.js';
import { writeSidecarConfig } from '../../dev/sidecar.js';
import { startSpicedb } from '../../dev/spicedb.js';
import { jwks, makeSigningKey } from '../../dev/jwt-fixtures.js';
import type { SpicedbServer } from '../../dev/spicedb.js';

const SCHEMA = readFileSync(join(PACKAGE_ROOT, 'examples', 'schema.zed'), 'utf8');
/** The packaged schema without cloud's `view`: what a rule asking for `view` must be refused against. */
const SCHEMA_WITHOUT_VIEW = SCHEMA.replace(/\n\s*permission view = member \+ admin \+ saga_creator/, '');

/** One key for every server here: the adapters read `{ env }` secrets from process.env. */
const PRESHARED_KEY = 'schema-check-key';
process.env.JWTAUTH_TEST_SPICEDB_KEY = PRESHARED_KEY;

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.allSettled(cleanups.splice(0).reverse().map((cleanup) => cleanup()));
});

function configFor(endpoint: string, permission: string): Record<string, unknown> {
  return {
    server: { grpcAddress: '127.0.0.1:0', adminAddress: '127.0.0.1:0', drainSeconds: 0 },
    issuers: [{ name: 'corp', issuer: 'https://corp.test', audience: 'gw', kind: 'external', jwks: { file: 'jwks.json' } }],
    spicedb: { endpoint, tls: false, presharedKey: { env: 'JWTAUTH_TEST_SPICEDB_KEY' } },
    inbound: {
      rules: [{ name: 'view-cloud', match: { http: { path: '/v1/clouds/{cloud}' } }, checks: [{ resource: 'cloud:{path.cloud}', permission }] }],
    },
  };
}

/** The config file, beside the JWKS file it names (keys are ready at once, so readiness is about the schema). */
async function writeConfig(config: Record<string, unknown>): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'jwtauth-schema-'));
  writeFileSync(join(dir, 'jwks.json'), JSON.stringify(jwks(await makeSigningKey())));
  return writeSidecarConfig(config, dir);
}

async function spicedb(schema: string, port?: number): Promise<SpicedbServer> {
  const server = await startSpicedb({ schema, presharedKey: PRESHARED_KEY, name: 'spicedb-schema', ...(port === undefined ? {} : { port }) });
  cleanups.push(() => server.stop());
  return server;
}

async function sidecar(configFile: string): Promise<RunningSidecar> {
  const running = await serve({ loaded: loadConfigFile(configFile), logger: createLogger({ level: 'silent' }) });
  cleanups.push(() => running.close());
  return running;
}

async function readyz(running: RunningSidecar): Promise<{ status: number; body: { ready: boolean; schema: string } }> {
  const response = await fetch(`http://127.0.0.1:${running.adminPort}/readyz`);
  return { status: response.status, body: (await response.json()) as { ready: boolean; schema: string } };
}

async function conformanceState(running: RunningSidecar): Promise<string | undefined> {
  const { values } = await running.metrics.schemaConformance.get();
  return values.find((sample) => sample.value === 1)?.labels.state as string | undefined;
}

async function untilSchemaState(running: RunningSidecar, state: string): Promise<void> {
  await waitFor(async () => (await readyz(running)).body.schema === state, 20_000, () => `/readyz schema never became ${state}`);
}

describe('rules checked against the schema a SpiceDB server holds', () => {
  it('a rule that fits the schema: ready, and the metric says conforms', async () => {
    const server = await spicedb(SCHEMA);
    const running = await sidecar(await writeConfig(configFor(server.endpoint, 'view')));
    await untilSchemaState(running, 'conforms');
    expect(await conformanceState(running)).toBe('conforms');
  });

  it('a permission the schema lacks: not ready, 503 on /readyz naming the schema state', async () => {
    const server = await spicedb(SCHEMA_WITHOUT_VIEW);
    const running = await sidecar(await writeConfig(configFor(server.endpoint, 'view')));
    await untilSchemaState(running, 'mismatch');
    const probe = await readyz(running);
    expect(probe.status).toBe(503);
    expect(probe.body.ready).toBe(false);
    expect(await conformanceState(running)).toBe('mismatch');
  });

  it('a server unreachable at start-up: the sidecar starts, and checks at the first successful contact', async () => {
    const port = await freePort();
    const running = await sidecar(await writeConfig(configFor(`127.0.0.1:${port}`, 'veiw')));
    expect((await readyz(running)).body.schema).toBe('unchecked');
    expect(await conformanceState(running)).toBe('unchecked');
    await spicedb(SCHEMA, port);
    await untilSchemaState(running, 'mismatch');
  });

  it('a reload that the server contradicts is refused, and the running rules keep serving', async () => {
    const server = await spicedb(SCHEMA);
    const configFile = await writeConfig(configFor(server.endpoint, 'view'));
    const running = await sidecar(configFile);
    await untilSchemaState(running, 'conforms');
    const failuresBefore = (await running.metrics.configReloads.get()).values.find((v) => v.labels.result === 'failure')?.value ?? 0;
    writeFileSync(configFile, JSON.stringify(configFor(server.endpoint, 'veiw')));
    await running.reload('test');
    const failuresAfter = (await running.metrics.configReloads.get()).values.find((v) => v.labels.result === 'failure')?.value ?? 0;
    expect(failuresAfter).toBe(failuresBefore + 1);
    expect((await readyz(running)).body).toMatchObject({ ready: true, schema: 'conforms' });
  });
});
