/**
 * What the SpiceDB client alone costs per uncached check: the checker (batcher, CheckBulkPermissions
 * calls, encoding, decoding) against a real SpiceDB, without Envoy, the listener or the decision
 * core, so the part of `sidecar_inbound_uncached`'s CPU per request that is the client can be told
 * from the rest. With `--baseline=DIR` (a checkout at another commit, built), its checker runs too,
 * in turns with this one (A B, B A, …), each round in a fresh process pinned to the authorizer's
 * core, so a before/after meets the same outside load.
 *
 *   node dist/bench/spicedb-client.js [--datastore=memory|postgres] [--rounds=N] [--checks=N]
 *     [--concurrency=N] [--baseline=DIR] [--out=FILE]
 *
 * Each round asks `--checks` checks (default 5,000) of distinct resources, `--concurrency` (default
 * 32, as many as the uncached scenario's h2load keeps in flight) at a time, with the sidecar's
 * default batch limits, after 2,000 to warm up (the same ones every round); it reports the process's CPU time per check
 * (every thread), checks per call, throughput and median latency. docs/benchmarks.md has the results.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Closable, PermissionChecker, PermissionQuery } from '../src/core/ports.js';
import type { GrpcCheckerOptions } from '../src/spicedb/grpc-checker.js';
import { PACKAGE_ROOT } from '../src/base/package-root.js';
import { startPostgres } from '../dev/postgres.js';
import type { PostgresCluster } from '../dev/postgres.js';
import { startSpicedb } from '../dev/spicedb.js';
import type { SpicedbDatastore } from '../dev/spicedb.js';
import { AUTHZ_CPUS, FRONT_CPUS, pin } from './pinning.js';
import { SCHEMA } from '../dev/bench/fixtures.js';
import { median } from './measure.js';

const WARM_UP_CHECKS = 2_000;
const KEY_ENV = 'BENCH_SPICEDB_CLIENT_KEY';

const flag = (name: string): string | undefined => process.argv.find((arg) => arg.startsWith(`--${name}=`))?.slice(name.length + 3);

interface RoundResult {
  readonly cpuUsPerCheck: number;
  readonly checksPerCall: number;
  readonly checksPerSecond: number;
  readonly p50Ms: number;
  /** Checks not answered `allowed` (every resource asked is one alice may view). */
  readonly wrong: number;
}

const query = (i: number): PermissionQuery => ({
  resource: { type: 'cloud', id: `c${i}` },
  permission: 'view',
  subject: { type: 'user', id: 'alice' },
  consistency: { kind: 'minimize_latency' },
});

/** In the measuring process: `count` checks from resource `from` on, `concurrency` at a time. */
async function measure(checkerModule: string, endpoint: string, from: number, count: number, concurrency: number): Promise<RoundResult> {
  type CheckerClass = new (options: GrpcCheckerOptions) => PermissionChecker & Closable;
  const { GrpcChecker } = (await import(pathToFileURL(checkerModule).href)) as { GrpcChecker: CheckerClass };
  let calls = 0;
  let sent = 0;
  const checker = new GrpcChecker({
    endpoint,
    presharedKey: process.env[KEY_ENV] ?? '',
    tls: false,
    deadlineMs: 2000,
    baseDir: PACKAGE_ROOT,
    batch: { maxItems: 100, maxConcurrentCalls: 4 },
    onCall: (checks) => {
      calls++;
      sent += checks;
    },
  });
  const latencies: number[] = [];
  let wrong = 0;
  const run = async (start: number, total: number): Promise<void> => {
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < total) {
        const i = start + next++;
        const began = performance.now();
        const answer = await checker.check(query(i));
        latencies.push(performance.now() - began);
        if (!answer.ok || answer.value.permissionship !== 'allowed') wrong++;
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
  };
  await run(0, WARM_UP_CHECKS);
  calls = sent = wrong = latencies.length = 0;
  const cpuBefore = process.cpuUsage();
  const began = performance.now();
  await run(from, count);
  const cpu = process.cpuUsage(cpuBefore);
  const seconds = (performance.now() - began) / 1000;
  await checker.close();
  return { cpuUsPerCheck: (cpu.user + cpu.system) / count, checksPerCall: sent / calls, checksPerSecond: count / seconds, p50Ms: median(latencies), wrong };
}

async function orchestrate(): Promise<void> {
  const datastoreFlag = flag('datastore') ?? 'memory';
  if (datastoreFlag !== 'memory' && datastoreFlag !== 'postgres') throw new Error('--datastore is memory or postgres');
  const rounds = Number(flag('rounds') ?? 5);
  const count = Number(flag('checks') ?? 5_000);
  const concurrency = Number(flag('concurrency') ?? 32);
  const baseline = flag('baseline');
  const builds: ReadonlyArray<readonly [string, string]> = [
    ...(baseline === undefined ? [] : [['baseline', join(resolve(baseline), 'dist/src/spicedb/grpc-checker.js')] as const]),
    ['this build', join(PACKAGE_ROOT, 'dist/src/spicedb/grpc-checker.js')],
  ];
  // Every round asks resources no round asked before, so SpiceDB's own cache never answers; the
  // warm-ups share theirs. SpiceDB's memory datastore slows with what it holds (at ~140,000
  // relationships, to ~200 checks/s here), so keep rounds × checks near 40,000.
  const resources = WARM_UP_CHECKS + rounds * builds.length * count;
  let postgres: PostgresCluster | undefined;
  let datastore: SpicedbDatastore = { engine: 'memory' };
  if (datastoreFlag === 'postgres') {
    postgres = await startPostgres({ name: 'bench-client-postgres', cpus: FRONT_CPUS });
    datastore = { engine: 'postgres', uri: postgres.uri };
  }
  const spicedb = await startSpicedb({ schema: SCHEMA, relationships: `cloud:c${resources - 1}#member@user:alice`, datastore, name: `spicedb-${datastoreFlag}` });
  try {
    pin(spicedb.process.child.pid, FRONT_CPUS);
    for (let from = 0; from < resources - 1; from += 1000) {
      const lines: string[] = [];
      for (let i = from; i < Math.min(resources - 1, from + 1000); i++) lines.push(`cloud:c${i}#member@user:alice`);
      await spicedb.write(lines.join('\n'));
    }
    // What was just written is visible to minimize_latency reads once a quantization window (5 s) has passed.
    await new Promise((done) => setTimeout(done, 6000));
    const results = new Map<string, RoundResult[]>(builds.map(([name]) => [name, []]));
    let from = WARM_UP_CHECKS;
    for (let round = 0; round < rounds; round++) {
      for (const [name, module] of round % 2 === 0 ? builds : [...builds].reverse()) {
        const args = ['--single-threaded-gc', join(PACKAGE_ROOT, 'dist/bench/spicedb-client.js'), `--worker=${module}`, `--endpoint=${spicedb.endpoint}`, `--from=${from}`, `--checks=${count}`, `--concurrency=${concurrency}`];
        const command = AUTHZ_CPUS === undefined ? [process.execPath, ...args] : ['taskset', '-c', AUTHZ_CPUS, process.execPath, ...args];
        const output = execFileSync(command[0]!, command.slice(1), { encoding: 'utf8', env: { ...process.env, [KEY_ENV]: spicedb.presharedKey } });
        from += count;
        const result = JSON.parse(output) as RoundResult;
        results.get(name)!.push(result);
        const line = `${result.cpuUsPerCheck.toFixed(1)} µs CPU per check, ${result.checksPerCall.toFixed(1)} checks per call, ${result.checksPerSecond.toFixed(0)} checks/s, p50 ${result.p50Ms.toFixed(2)} ms`;
        process.stdout.write(`round ${round + 1} ${name}: ${line}${result.wrong > 0 ? `, ${result.wrong} not allowed` : ''}\n`);
      }
    }
    const summary = Object.fromEntries(
      [...results].map(([name, rows]) => [name, { cpuUsPerCheck: median(rows.map((r) => r.cpuUsPerCheck)), checksPerCall: median(rows.map((r) => r.checksPerCall)), rounds: rows }]),
    );
    process.stdout.write(`medians: ${[...results.keys()].map((name) => `${name} ${summary[name]!.cpuUsPerCheck.toFixed(1)} µs per check`).join(', ')}\n`);
    const out = flag('out');
    if (out) writeFileSync(out, `${JSON.stringify({ date: new Date().toISOString(), datastore: datastoreFlag, count, concurrency, summary }, null, 2)}\n`);
  } finally {
    await spicedb.stop();
    await postgres?.stop();
  }
}

const worker = flag('worker');
const main = worker
  ? async (): Promise<void> => {
      const result = await measure(worker, flag('endpoint') ?? '', Number(flag('from')), Number(flag('checks')), Number(flag('concurrency')));
      process.stdout.write(JSON.stringify(result));
    }
  : orchestrate;
main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
    process.exit(1);
  },
);
