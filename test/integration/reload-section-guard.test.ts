/**
 * Guarantee: a reload never silently drops a whole section that serves traffic. A new file without
 * `outbound` (cut short, or edited in the wrong place) is refused and counted, and the running
 * configuration stays loaded (its hash in jwtauth_config_info); the same file with
 * `reload.allowSectionRemoval: true` is accepted. Runs the real serve() on the embedded SpiceDB.
 */
import { writeFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfigFile } from '../../src/config/load.js';
import { createLogger } from '../../src/observability/logger.js';
import { serve } from '../../src/serve.js';
import type { RunningSidecar } from '../../src/serve.js';
import { writeSidecarConfig } from '../../dev/sidecar.js';

const running: RunningSidecar[] = [];
afterEach(async () => {
  await Promise.allSettled(running.splice(0).map((sidecar) => sidecar.close()));
});

const BOTH = {
  server: { grpcAddress: '127.0.0.1:0', adminAddress: '127.0.0.1:0', drainSeconds: 0 },
  service: { name: 'gwadmin' },
  tokens: { source: { kind: 'mint', issuer: 'https://gw.test' } },
  inbound: { default: 'allow' },
  outbound: { upstreams: [{ audience: 'vmcontroller' }] },
};
const { outbound: _dropped, tokens: _unused, ...INBOUND_ONLY } = BOTH;

async function reloads(sidecar: RunningSidecar, result: 'success' | 'failure'): Promise<number> {
  return (await sidecar.metrics.configReloads.get()).values.find((value) => value.labels.result === result)?.value ?? 0;
}

async function infoHash(sidecar: RunningSidecar): Promise<string | undefined> {
  return (await sidecar.metrics.configInfo.get()).values.find((value) => value.value === 1)?.labels.hash as string | undefined;
}

async function start(configFile: string): Promise<RunningSidecar> {
  const sidecar = await serve({ loaded: loadConfigFile(configFile), logger: createLogger({ level: 'silent' }) });
  running.push(sidecar);
  return sidecar;
}

describe('a reload that removes a serving section', () => {
  it('is refused and counted, and the running configuration keeps serving', async () => {
    const file = writeSidecarConfig(BOTH);
    const sidecar = await start(file);
    const hash = await infoHash(sidecar);
    writeFileSync(file, JSON.stringify(INBOUND_ONLY));
    await sidecar.reload('test');
    expect(await reloads(sidecar, 'failure')).toBe(1);
    expect(await reloads(sidecar, 'success')).toBe(0);
    expect(await infoHash(sidecar)).toBe(hash);
  });

  it('is accepted when the new file says reload.allowSectionRemoval: true', async () => {
    const file = writeSidecarConfig(BOTH);
    const sidecar = await start(file);
    const hash = await infoHash(sidecar);
    writeFileSync(file, JSON.stringify({ ...INBOUND_ONLY, reload: { allowSectionRemoval: true } }));
    await sidecar.reload('test');
    expect(await reloads(sidecar, 'success')).toBe(1);
    expect(await infoHash(sidecar)).not.toBe(hash);
  });
});
