/**
 * What one Check allocates, for a cached inbound allow, a cached outbound allow and an inbound
 * denial: heap bytes per Check, and scavenges and mark-compacts per 10k Checks, measured two ways.
 * - In this process (dev/in-process-sidecar.ts: decoder, pipeline with its real adapters,
 *   decision log and metrics, answer encoder; no socket). With `--heap-profile`, also the
 *   allocation sites (V8's sampling heap profiler, counting objects a scavenge already
 *   collected), so a cut can be aimed.
 * - In a sidecar process of its own, sent Checks over gRPC straight to its listener (node:http2
 *   included), counted by dev/gc-accounting.ts preloaded into it, with its CPU per Check from
 *   /proc. `--cli=PATH` measures another build this way only (e.g. a worktree at an older
 *   commit), for a before/after.
 * Both ways, a cached inbound allow is also measured with tracing on at ratio 0 and ratio 1
 * (exported to a sink that discards it), against tracing off in the same run.
 *
 *   npm run bench:allocation [-- --checks=20000 --heap-profile --cli=PATH --out=FILE]
 */
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import type { GcTotals } from '../dev/gc-accounting.js';
import { allocationPerCheck, encodeCheckRequest, envoyShapedCheckRequest, openInProcessSidecar, waitUntilReady } from '../dev/in-process-sidecar.js';
import type { CheckAllocation, InProcessSidecar } from '../dev/in-process-sidecar.js';
import { launchSidecar, writeSidecarConfig } from '../dev/sidecar.js';
import { startSpicedb } from '../dev/spicedb.js';
import { loadConfigFile } from '../src/config/load.js';
import { envoyAuthProto } from '../src/envoy/protos.js';
import type { AuthorizationClient } from '../src/generated/envoy/service/auth/v3/Authorization.js';
import type { CheckRequest } from '../src/generated/envoy/service/auth/v3/CheckRequest.js';
import { createLogger } from '../src/observability/logger.js';
import { PACKAGE_ROOT } from '../src/base/package-root.js';
import { makeKeys, SCHEMA, sidecarConfig, signToken, UPSTREAM } from '../dev/bench/fixtures.js';
import type { BenchKeys } from '../dev/bench/fixtures.js';
import { startOtlpSink } from './otlp-sink.js';
import { SHIPPED_NODE_ARGS } from '../dev/node-flags.js';
import { sampleProcess, TICKS_PER_SECOND } from '../dev/proc.js';

const { values: flags } = parseArgs({
  options: {
    checks: { type: 'string', default: '20000' },
    'heap-profile': { type: 'boolean', default: false },
    cli: { type: 'string' },
    out: { type: 'string' },
  },
});
const CHECKS = Number(flags.checks);
/** Checks in flight against the sidecar process, as Envoy keeps several on its connection. */
const IN_FLIGHT = 16;
const GC_ACCOUNTING = join(PACKAGE_ROOT, 'dist', 'dev', 'gc-accounting.js');

interface Case {
  readonly name: string;
  readonly request: CheckRequest;
}

const log = (message: string): void => void process.stderr.write(`[allocation] ${message}\n`);

function describe(where: string, name: string, result: CheckAllocation): void {
  const cpu = Number.isNaN(result.cpuMicrosPerCheck) ? '' : `, ${result.cpuMicrosPerCheck.toFixed(1)} µs of CPU`;
  log(`${where}: ${name}: ${result.bytesPerCheck} bytes per Check${cpu}, ${result.scavengesPer10k.toFixed(1)} scavenges and ${result.markCompactsPer10k.toFixed(1)} mark-compacts per 10k`);
}

async function inProcess(sidecar: InProcessSidecar, cases: readonly Case[]): Promise<Record<string, CheckAllocation>> {
  const results: Record<string, CheckAllocation> = {};
  for (const { name, request } of cases) {
    results[name] = await allocationPerCheck(sidecar, encodeCheckRequest(request), CHECKS);
    describe('in-process', name, results[name]);
  }
  return results;
}

/** The allocation sites of `request`'s Checks, by allocating function and by the nearest of ours. */
async function heapProfile(sidecar: InProcessSidecar, request: Buffer): Promise<void> {
  const session = new Session();
  session.connect();
  await session.post('HeapProfiler.startSampling', { samplingInterval: 256, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
  for (let i = 0; i < CHECKS; i++) await sidecar.check(request);
  const { profile } = await session.post('HeapProfiler.stopSampling');
  session.disconnect();
  const sites = new Map<string, number>();
  const walk = (node: typeof profile.head, stack: readonly string[]): void => {
    const frame = `${node.callFrame.functionName || '(anonymous)'} ${node.callFrame.url.replace(/^.*\/(dist|node_modules)\//, '$1/')}:${node.callFrame.lineNumber + 1}`;
    const here = [...stack, frame];
    if (node.selfSize > 0) {
      const ours = [...here].reverse().find((f) => f.includes('dist/src/')) ?? '(not ours)';
      for (const key of [`self ${frame}`, `ours ${ours}`]) sites.set(key, (sites.get(key) ?? 0) + node.selfSize);
    }
    for (const child of node.children) walk(child, here);
  };
  walk(profile.head, []);
  for (const [site, bytes] of [...sites].sort((a, b) => b[1] - a[1]).slice(0, 60)) log(`${(bytes / CHECKS).toFixed(0).padStart(7)} B/Check  ${site}`);
}

/**
 * What tracing adds to a cached inbound allow, in-process: off, on at ratio 0 (every span created
 * unsampled) and ratio 1 (every span recorded and exported to a sink that discards it).
 */
async function withTracing(keys: BenchKeys, spicedbEndpoint: string, keyEnv: string, env: NodeJS.ProcessEnv, dir: string, inbound: Case): Promise<Record<string, Record<string, CheckAllocation>>> {
  const sink = await startOtlpSink();
  const results: Record<string, Record<string, CheckAllocation>> = { inProcess: {}, sidecarProcess: {} };
  try {
    for (const ratio of [undefined, 0, 1]) {
      const name = ratio === undefined ? 'tracing off' : `tracing ratio ${ratio}`;
      const variant = ratio === undefined ? {} : { tracing: { ratio } };
      const configFile = writeSidecarConfig(sidecarConfig(keys, spicedbEndpoint, keyEnv, variant, sink.endpoint), mkdtempSync(join(dir, 'tracing-')));
      const loaded = loadConfigFile(configFile);
      const sidecar = await openInProcessSidecar(loaded, createLogger({ level: loaded.config.log.level }));
      try {
        await waitUntilReady(sidecar);
        const result = await allocationPerCheck(sidecar, encodeCheckRequest(inbound.request), CHECKS);
        (results.inProcess as Record<string, CheckAllocation>)[name] = result;
        describe('in-process', `${inbound.name}, ${name}`, result);
      } finally {
        await sidecar.close();
      }
      const inProcess = await inSidecarProcess(configFile, env, [inbound], `, ${name}`);
      (results.sidecarProcess as Record<string, CheckAllocation>)[name] = inProcess[inbound.name] as CheckAllocation;
    }
  } finally {
    await sink.close();
  }
  return results;
}

async function inSidecarProcess(configFile: string, env: NodeJS.ProcessEnv, cases: readonly Case[], label = ''): Promise<Record<string, CheckAllocation>> {
  const accounting = join(mkdtempSync(join(tmpdir(), 'jwtauth-gc-')), 'totals.json');
  const sidecar = await launchSidecar({
    configFile,
    name: 'allocation-sidecar',
    ...(flags.cli === undefined ? {} : { cli: flags.cli }),
    nodeArgs: [...SHIPPED_NODE_ARGS, '--import', GC_ACCOUNTING],
    env: { ...env, JWTAUTH_GC_ACCOUNTING_FILE: accounting },
  });
  const Authorization = envoyAuthProto().envoy.service.auth.v3.Authorization;
  const client: AuthorizationClient = new Authorization(`127.0.0.1:${sidecar.grpcPort}`, grpc.credentials.createInsecure());
  const call = (request: CheckRequest): Promise<void> =>
    new Promise((resolve, reject) => client.Check(request, (error) => (error ? reject(error) : resolve())));
  const load = async (request: CheckRequest, checks: number): Promise<void> => {
    let sent = 0;
    const lane = async (): Promise<void> => {
      while (sent < checks) {
        sent++;
        await call(request);
      }
    };
    await Promise.all(Array.from({ length: IN_FLIGHT }, lane));
  };
  const pid = sidecar.process.child.pid as number;
  const totals = async (): Promise<GcTotals> => {
    const last = existsSync(accounting) ? (JSON.parse(readFileSync(accounting, 'utf8')) as GcTotals).sequence : 0;
    process.kill(pid, 'SIGUSR2');
    for (let waited = 0; waited < 5_000; waited += 10) {
      await sleep(10);
      if (!existsSync(accounting)) continue;
      const read = JSON.parse(readFileSync(accounting, 'utf8')) as GcTotals;
      if (read.sequence > last) return read;
    }
    throw new Error('the sidecar did not write its allocation totals (was it built with dev/gc-accounting.js?)');
  };
  const results: Record<string, CheckAllocation> = {};
  try {
    for (const { name, request } of cases) {
      await load(request, 2_000);
      const before = await totals();
      const cpuBefore = sampleProcess(pid);
      await load(request, CHECKS);
      const cpuAfter = sampleProcess(pid);
      const after = await totals();
      results[name] = {
        bytesPerCheck: Math.round((after.bytes - before.bytes) / CHECKS),
        scavengesPer10k: ((after.scavenges - before.scavenges) * 10_000) / CHECKS,
        markCompactsPer10k: ((after.markCompacts - before.markCompacts) * 10_000) / CHECKS,
        // From /proc, in 10 ms ticks: ±0.5 % over a few seconds of Checks.
        cpuMicrosPerCheck: cpuBefore && cpuAfter ? (((cpuAfter.cpuTicks - cpuBefore.cpuTicks) / TICKS_PER_SECOND) * 1e6) / CHECKS : Number.NaN,
      };
      describe(`sidecar process${flags.cli === undefined ? '' : ` (${flags.cli})`}`, `${name}${label}`, results[name]);
    }
  } finally {
    client.close();
    await sidecar.stop();
  }
  return results;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'jwtauth-allocation-'));
  const keys = makeKeys(dir);
  const spicedb = await startSpicedb({ schema: SCHEMA, relationships: 'cloud:cl0#member@user:alice', name: 'allocation-spicedb' });
  const keyEnv = 'BENCH_SPICEDB_KEY';
  const env = { [keyEnv]: spicedb.presharedKey };
  process.env[keyEnv] = spicedb.presharedKey;
  const configFile = writeSidecarConfig(sidecarConfig(keys, spicedb.endpoint, keyEnv), dir);
  const token = signToken(keys);
  const cases: Case[] = [
    { name: 'inbound cached allow', request: envoyShapedCheckRequest('/v1/clouds/cl0/namespaces', { authorization: `Bearer ${token}` }, { direction: 'inbound' }) },
    { name: 'outbound cached allow', request: envoyShapedCheckRequest('/v1/vms', {}, { direction: 'outbound', audience: UPSTREAM }) },
    { name: 'inbound permission denied', request: envoyShapedCheckRequest('/v1/clouds/cl1/namespaces', { authorization: `Bearer ${token}` }, { direction: 'inbound' }) },
  ];
  try {
    // Another build can only be measured as a process: the in-process figures are this build's.
    if (flags.cli !== undefined) {
      const processResults = await inSidecarProcess(configFile, env, cases);
      if (flags.out) writeFileSync(flags.out, `${JSON.stringify({ checks: CHECKS, cli: flags.cli, sidecarProcess: processResults }, null, 2)}\n`);
      return;
    }
    const loaded = loadConfigFile(configFile);
    const sidecar = await openInProcessSidecar(loaded, createLogger({ level: loaded.config.log.level }));
    let inProcessResults: Record<string, CheckAllocation>;
    try {
      await waitUntilReady(sidecar);
      inProcessResults = await inProcess(sidecar, cases);
      if (flags['heap-profile']) await heapProfile(sidecar, encodeCheckRequest((cases[0] as Case).request));
    } finally {
      await sidecar.close();
    }
    const tracing = await withTracing(keys, spicedb.endpoint, keyEnv, env, dir, cases[0] as Case);
    const processResults = await inSidecarProcess(configFile, env, cases);
    if (flags.out) writeFileSync(flags.out, `${JSON.stringify({ checks: CHECKS, cli: 'this build', inProcess: inProcessResults, tracing, sidecarProcess: processResults }, null, 2)}\n`);
  } finally {
    await spicedb.stop();
  }
}

await main();
