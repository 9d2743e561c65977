/**
 * What one Check allocates, in this process (dev/in-process-sidecar.ts: decoder, pipeline with
 * its real adapters, decision log and metrics, answer encoder; no socket): bytes per Check and
 * collections per 10k Checks for a cached inbound allow, a cached outbound allow and a denial,
 * and with `--heap-profile` the allocation sites (V8's sampling heap profiler, counting objects a
 * scavenge already collected), so a cut can be aimed.
 *
 *   npm run bench:allocation [-- --checks=20000 --heap-profile --out=FILE]
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfigFile } from '../src/config/load.js';
import { createLogger } from '../src/observability/logger.js';
import { allocationPerCheck, encodeCheckRequest, envoyShapedCheckRequest, openInProcessSidecar, waitUntilReady } from '../dev/in-process-sidecar.js';
import type { CheckAllocation } from '../dev/in-process-sidecar.js';
import type { InProcessSidecar } from '../dev/in-process-sidecar.js';
import { writeSidecarConfig } from '../dev/sidecar.js';
import { startSpicedb } from '../dev/spicedb.js';
import { makeKeys, SCHEMA, sidecarConfig, signToken, UPSTREAM } from './fixtures.js';

const { values: flags } = parseArgs({
  options: {
    checks: { type: 'string', default: '20000' },
    'heap-profile': { type: 'boolean', default: false },
    out: { type: 'string' },
  },
});
const CHECKS = Number(flags.checks);

interface Case {
  readonly name: string;
  readonly request: Buffer;
}

async function run(sidecar: InProcessSidecar, request: Buffer, checks: number): Promise<void> {
  for (let i = 0; i < checks; i++) await sidecar.check(request);
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'jwtauth-allocation-'));
  const keys = makeKeys(dir);
  const spicedb = await startSpicedb({ schema: SCHEMA, relationships: 'cloud:cl0#member@user:alice', name: 'allocation-spicedb' });
  const keyEnv = 'BENCH_SPICEDB_KEY';
  process.env[keyEnv] = spicedb.presharedKey;
  const loaded = loadConfigFile(writeSidecarConfig(sidecarConfig(keys, spicedb.endpoint, keyEnv), dir));
  const sidecar = await openInProcessSidecar(loaded, createLogger({ level: loaded.config.log.level }));
  try {
    const token = signToken(keys);
    const cases: Case[] = [
      { name: 'inbound cached allow', request: encodeCheckRequest(envoyShapedCheckRequest('/v1/clouds/cl0/namespaces', { authorization: `Bearer ${token}` }, { direction: 'inbound' })) },
      { name: 'outbound cached allow', request: encodeCheckRequest(envoyShapedCheckRequest('/v1/vms', {}, { direction: 'outbound', audience: UPSTREAM })) },
      { name: 'inbound permission denied', request: encodeCheckRequest(envoyShapedCheckRequest('/v1/clouds/cl1/namespaces', { authorization: `Bearer ${token}` }, { direction: 'inbound' })) },
    ];
    await waitUntilReady(sidecar);
    const results: Record<string, CheckAllocation> = {};
    for (const { name, request } of cases) {
      const result = await allocationPerCheck(sidecar, request, CHECKS);
      results[name] = result;
      process.stderr.write(`[allocation] ${name}: ${result.bytesPerCheck} bytes per Check, ${result.scavengesPer10k.toFixed(1)} scavenges and ${result.markCompactsPer10k.toFixed(1)} mark-compacts per 10k\n`);
    }
    if (flags['heap-profile']) {
      const first = cases[0] as Case;
      const session = new Session();
      session.connect();
      await session.post('HeapProfiler.startSampling', { samplingInterval: 256, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
      await run(sidecar, first.request, CHECKS);
      const { profile } = await session.post('HeapProfiler.stopSampling');
      session.disconnect();
      const sites = new Map<string, number>();
      const walk = (node: typeof profile.head, stack: string[]): void => {
        const frame = `${node.callFrame.functionName || '(anonymous)'} ${node.callFrame.url.replace(/^.*\/(dist|node_modules)\//, '$1/')}:${node.callFrame.lineNumber + 1}`;
        const here = [...stack, frame];
        if (node.selfSize > 0) {
          // By the allocating function, and separately by the function of ours nearest to it.
          const ours = [...here].reverse().find((f) => f.includes('dist/src/')) ?? '(not ours)';
          for (const key of [`self ${frame}`, `ours ${ours}`]) sites.set(key, (sites.get(key) ?? 0) + node.selfSize);
        }
        for (const child of node.children) walk(child, here);
      };
      walk(profile.head, []);
      const ranked = [...sites].sort((a, b) => b[1] - a[1]).slice(0, 60);
      for (const [site, bytes] of ranked) process.stderr.write(`${(bytes / CHECKS).toFixed(0).padStart(7)} B/Check  ${site}\n`);
      if (flags.out) writeFileSync(flags.out, JSON.stringify(profile));
    }
    if (flags.out && !flags['heap-profile']) writeFileSync(flags.out, JSON.stringify(results, null, 2));
  } finally {
    await sidecar.close();
    await spicedb.stop();
  }
}

await main();
