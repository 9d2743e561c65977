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
import type { CheckRequest } from '../src/generated/envoy/service/auth/v3/CheckRequest.js';
import { measureAllocation } from '../dev/heap-allocation.js';
import { encodeCheckRequest, openInProcessSidecar } from '../dev/in-process-sidecar.js';
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

/** The shape of the CheckRequest Envoy sends for an HTTP/2 call (headers as the ext_authz filter lists them). */
function envoyCheckRequest(path: string, headers: Readonly<Record<string, string>>, contextExtensions: Readonly<Record<string, string>>): CheckRequest {
  const all: Record<string, string> = {
    ':authority': 'bench.local',
    ':path': path,
    ':method': 'GET',
    ':scheme': 'http',
    'user-agent': 'h2load nghttp2/1.64.0',
    'x-forwarded-proto': 'http',
    'x-request-id': '6f0c1a52-3f4e-4b8e-9d0a-2c1f3e4d5a6b',
    ...headers,
  };
  return {
    attributes: {
      source: { address: { socket_address: { address: '127.0.0.1', port_value: 51234 } } },
      destination: { address: { socket_address: { address: '127.0.0.1', port_value: 10000 } } },
      request: {
        time: { seconds: String(Math.floor(Date.now() / 1000)), nanos: 0 },
        http: {
          id: '14512862301342457891',
          method: 'GET',
          path,
          host: 'bench.local',
          scheme: 'http',
          protocol: 'HTTP/2',
          header_map: { headers: Object.entries(all).map(([key, value]) => ({ key, raw_value: Buffer.from(value) })) },
        },
      },
      context_extensions: contextExtensions,
    },
  };
}

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
      { name: 'inbound cached allow', request: encodeCheckRequest(envoyCheckRequest('/v1/clouds/cl0/namespaces', { authorization: `Bearer ${token}` }, { direction: 'inbound' })) },
      { name: 'outbound cached allow', request: encodeCheckRequest(envoyCheckRequest('/v1/vms', {}, { direction: 'outbound', audience: UPSTREAM })) },
      { name: 'inbound permission denied', request: encodeCheckRequest(envoyCheckRequest('/v1/clouds/cl1/namespaces', { authorization: `Bearer ${token}` }, { direction: 'inbound' })) },
    ];
    const deadline = Date.now() + 20_000;
    while (!sidecar.ready()) {
      if (Date.now() > deadline) throw new Error('the in-process sidecar did not become ready');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const results: Record<string, { bytesPerCheck: number; scavengesPer10k: number; markCompactsPer10k: number }> = {};
    for (const { name, request } of cases) {
      await run(sidecar, request, 2_000); // warm: caches filled, code optimized
      const sample = await measureAllocation(() => run(sidecar, request, CHECKS));
      results[name] = { bytesPerCheck: Math.round(sample.bytes / CHECKS), scavengesPer10k: (sample.scavenges * 10_000) / CHECKS, markCompactsPer10k: (sample.markCompacts * 10_000) / CHECKS };
      process.stderr.write(`[allocation] ${name}: ${results[name]?.bytesPerCheck} bytes per Check, ${results[name]?.scavengesPer10k.toFixed(1)} scavenges per 10k\n`);
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
