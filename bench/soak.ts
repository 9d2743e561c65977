/**
 * Soak: a steady request rate through the real Envoy (envoy/envoy.yaml) and the built sidecar,
 * against a real SpiceDB, for a long run (10 minutes by default). Every few seconds it reads the
 * sidecar's /metrics (RSS, heap used, event-loop lag, active handles); each minute it prints a
 * summary line. After the warm-up, growth of RSS, heap floor and open handles must stay under the
 * limit (10 %), and every request must get the answer its class expects; otherwise exit 1.
 *
 *   npm run soak -- [--duration 600] [--warmup 120] [--rate 200] [--limit 0.10] [--out FILE]
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { PACKAGE_ROOT } from '../src/package-root.js';
import { startEchoUpstream } from '../dev/echo-upstream.js';
import { startEnvoy } from '../dev/envoy.js';
import { JwksServer, jwks, makeSigningKey } from '../dev/jwt-fixtures.js';
import { launchSidecar, writeSidecarConfig } from '../dev/sidecar.js';
import { startSpicedb } from '../dev/spicedb.js';
import { relationships, SCHEMA, sidecarConfig, userToken } from '../dev/hardening/fixtures.js';
import { LoadClient } from '../dev/hardening/load.js';

const { values: flags } = parseArgs({
  options: {
    duration: { type: 'string', default: '600' },
    warmup: { type: 'string', default: '120' },
    rate: { type: 'string', default: '200' },
    limit: { type: 'string', default: '0.10' },
    'sample-every': { type: 'string', default: '2' },
    out: { type: 'string' },
  },
});
const DURATION_S = Number(flags.duration);
const WARMUP_S = Number(flags.warmup);
const RATE = Number(flags.rate);
const LIMIT = Number(flags.limit);
const SAMPLE_S = Number(flags['sample-every']);
if (![DURATION_S, WARMUP_S, RATE, LIMIT, SAMPLE_S].every((n) => Number.isFinite(n) && n >= 0) || DURATION_S <= WARMUP_S + 60) {
  console.error('usage: soak [--duration S] [--warmup S] [--rate RPS] [--limit FRACTION]; duration must exceed warm-up by at least 60 s');
  process.exit(2);
}

const CLOUDS = 64;

interface Sample {
  readonly t: number;
  readonly rss: number;
  readonly heapUsed: number;
  readonly lag: number;
  readonly handles: number;
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : ((s[(s.length - 1) >> 1] as number) + (s[s.length >> 1] as number)) / 2;
};
const quantile = (xs: readonly number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : (s[Math.min(s.length - 1, Math.floor(q * s.length))] as number);
};

type RequestClass = 'allowed' | 'denied' | 'fresh_token' | 'egress';
const EXPECTED: Record<RequestClass, number> = { allowed: 200, denied: 403, fresh_token: 403, egress: 200 };

async function main(): Promise<void> {
  const started = new Date();
  const work = mkdtempSync(join(tmpdir(), 'jwtauth-soak-'));
  const spicedb = await startSpicedb({ schema: SCHEMA, relationships: relationships(CLOUDS), name: 'soak-spicedb' });
  const externalKey = await makeSigningKey('ES256', 'ext-1');
  const internalKey = await makeSigningKey('RS256', 'mesh-1');
  const externalJwks = await new JwksServer().start(jwks(externalKey));
  const internalJwks = await new JwksServer().start(jwks(internalKey));
  const app = await startEchoUpstream();
  const vmcontroller = await startEchoUpstream();

  const config = sidecarConfig({
    spicedbEndpoint: spicedb.endpoint,
    spicedbKeyEnv: 'SOAK_SPICEDB_KEY',
    externalJwksUrl: externalJwks.url,
    internalJwksUrl: internalJwks.url,
  });
  const sidecar = await launchSidecar({
    configFile: writeSidecarConfig(config, work),
    env: { SOAK_SPICEDB_KEY: spicedb.presharedKey },
    stopGraceMs: 5000,
  });
  let sidecarExit: string | undefined;
  let stopping = false;
  void sidecar.process.exited.then((code) => {
    if (stopping) return;
    sidecarExit = `sidecar exited (code ${code}, signal ${sidecar.process.child.signalCode}) at ${new Date().toISOString()}; last output:\n${sidecar.process.output().slice(-4000)}`;
    console.error(sidecarExit);
  });

  // The deployed envoy/envoy.yaml, only its ports changed.
  const envoy = await startEnvoy({ sidecar: sidecar.grpcPort, app: app.port, vmcontroller: vmcontroller.port });
  const { ports } = envoy;

  const alice = await userToken(externalKey, 'alice', { expiresIn: DURATION_S + 600 });
  const bob = await userToken(externalKey, 'bob', { expiresIn: DURATION_S + 600 });
  const ingress = new LoadClient(ports.ingress, 256);
  const egress = new LoadClient(ports.egress, 256);

  // ------------------------------------------------------------------ steady load
  const counts = new Map<string, number>();
  const unexpected = new Map<string, number>();
  let latencies: number[] = [];
  let minuteCounts = 0;
  let sent = 0;
  let n = 0;
  const bump = (map: Map<string, number>, key: string): void => {
    map.set(key, (map.get(key) ?? 0) + 1);
  };
  const fire = async (): Promise<void> => {
    const i = n++;
    const pick = i % 20;
    let cls: RequestClass;
    let result;
    if (pick < 12) {
      cls = 'allowed';
      result = await ingress.request({ path: `/v1/clouds/cl${i % CLOUDS}/vms`, headers: { authorization: `Bearer ${alice}` } }, `a${i}`);
    } else if (pick < 15) {
      cls = 'denied';
      result = await ingress.request({ path: `/v1/clouds/cl${i % CLOUDS}/vms`, headers: { authorization: `Bearer ${bob}` } }, `d${i}`);
    } else if (pick < 17) {
      // A never-seen token and subject: signature verification and a SpiceDB call every time.
      cls = 'fresh_token';
      const token = await userToken(externalKey, `u${i}`, { expiresIn: 30 });
      result = await ingress.request({ path: `/v1/clouds/cl${i % CLOUDS}/vms`, headers: { authorization: `Bearer ${token}` } }, `f${i}`);
    } else {
      cls = 'egress';
      result = await egress.request({ path: '/vm.v1/List', authority: 'vmcontroller' }, `e${i}`);
    }
    sent++;
    minuteCounts++;
    latencies.push(result.end - result.start);
    const key = `${cls} ${result.status} ${result.reason ?? result.error ?? ''}`.trim();
    bump(counts, key);
    if (result.status !== EXPECTED[cls]) bump(unexpected, key);
  };

  const intervalMs = 10;
  const perTick = RATE / (1000 / intervalMs);
  let owed = 0;
  const inflight = new Set<Promise<void>>();
  const loadTimer = setInterval(() => {
    owed += perTick;
    while (owed >= 1) {
      owed -= 1;
      const p = fire().finally(() => inflight.delete(p));
      inflight.add(p);
    }
  }, intervalMs);

  // ------------------------------------------------------------------ sampling
  const t0 = Date.now();
  const samples: Sample[] = [];
  const sample = async (): Promise<void> => {
    try {
      const metrics = await sidecar.metrics();
      samples.push({
        t: (Date.now() - t0) / 1000,
        rss: metrics.total('process_resident_memory_bytes') ?? NaN,
        heapUsed: metrics.total('nodejs_heap_size_used_bytes') ?? NaN,
        lag: metrics.total('nodejs_eventloop_lag_seconds') ?? NaN,
        // A total where the runtime has one; otherwise the per-type counts, summed.
        handles: metrics.total('nodejs_active_handles_total') ?? metrics.total('nodejs_active_handles') ?? NaN,
      });
    } catch (error) {
      bump(unexpected, `metrics read failed: ${(error as Error).message}`);
    }
  };
  const sampleTimer = setInterval(() => void sample(), SAMPLE_S * 1000);

  interface Minute {
    minute: number;
    requests: number;
    rps: number;
    p50Ms: number;
    p99Ms: number;
    rssMiB: number;
    heapUsedMiB: number;
    heapFloorMiB: number;
    lagMs: number;
    lagMaxMs: number;
    handles: number;
  }
  const minutes: Minute[] = [];
  const MiB = 1024 * 1024;
  const minuteSummary = (minute: number): Minute => {
    const inMinute = samples.filter((s) => s.t > (minute - 1) * 60 && s.t <= minute * 60);
    const row: Minute = {
      minute,
      requests: minuteCounts,
      rps: Math.round(minuteCounts / 60),
      p50Ms: +quantile(latencies, 0.5).toFixed(2),
      p99Ms: +quantile(latencies, 0.99).toFixed(2),
      rssMiB: +(median(inMinute.map((s) => s.rss)) / MiB).toFixed(1),
      heapUsedMiB: +(median(inMinute.map((s) => s.heapUsed)) / MiB).toFixed(1),
      heapFloorMiB: +(Math.min(...inMinute.map((s) => s.heapUsed)) / MiB).toFixed(1),
      lagMs: +(median(inMinute.map((s) => s.lag)) * 1000).toFixed(2),
      lagMaxMs: +(Math.max(...inMinute.map((s) => s.lag)) * 1000).toFixed(2),
      handles: median(inMinute.map((s) => s.handles)),
    };
    minuteCounts = 0;
    latencies = [];
    return row;
  };

  const totalMinutes = Math.floor(DURATION_S / 60);
  console.log(`soak: ${DURATION_S} s at ${RATE} req/s (warm-up ${WARMUP_S} s), sidecar pid ${sidecar.process.child.pid}`);
  for (let minute = 1; minute <= totalMinutes; minute++) {
    await new Promise((r) => setTimeout(r, t0 + minute * 60_000 - Date.now()));
    const row = minuteSummary(minute);
    minutes.push(row);
    console.log(
      `minute ${String(minute).padStart(2)}: ${row.rps} req/s p50 ${row.p50Ms} ms p99 ${row.p99Ms} ms | RSS ${row.rssMiB} MiB heap ${row.heapUsedMiB} MiB (floor ${row.heapFloorMiB}) lag ${row.lagMs} ms (max ${row.lagMaxMs}) handles ${row.handles}`,
    );
  }
  clearInterval(loadTimer);
  clearInterval(sampleTimer);
  await Promise.all(inflight);
  ingress.close();
  egress.close();

  // ------------------------------------------------------------------ verdict
  const firstAfterWarmup = minutes.find((m) => (m.minute - 1) * 60 >= WARMUP_S) ?? minutes[0];
  const last = minutes[minutes.length - 1];
  if (!firstAfterWarmup || !last) throw new Error('no samples');
  const growth = {
    rss: last.rssMiB / firstAfterWarmup.rssMiB - 1,
    heapFloor: last.heapFloorMiB / firstAfterWarmup.heapFloorMiB - 1,
    handles: last.handles / firstAfterWarmup.handles - 1,
  };
  const failures: string[] = [];
  for (const [what, value] of Object.entries(growth)) {
    if (!(value < LIMIT)) failures.push(`${what} grew ${(value * 100).toFixed(1)} % after warm-up (limit ${(LIMIT * 100).toFixed(0)} %)`);
  }
  for (const [key, count] of unexpected) failures.push(`${count} × unexpected answer: ${key}`);
  if (sidecarExit !== undefined) failures.push(sidecarExit);

  const result = {
    date: started.toISOString(),
    machine: { node: process.version, cpus: (await import('node:os')).cpus().length },
    settings: { durationSeconds: DURATION_S, warmupSeconds: WARMUP_S, rate: RATE, limit: LIMIT, sampleEverySeconds: SAMPLE_S },
    mix: { allowed: '60 % (alice, 64 clouds, decision cache 2 s)', denied: '15 % (bob)', fresh_token: '10 % (new subject each: verify + SpiceDB)', egress: '15 % (service token attached)' },
    totals: { requests: sent, byClassStatusReason: Object.fromEntries(counts) },
    baselineMinute: firstAfterWarmup.minute,
    growth: Object.fromEntries(Object.entries(growth).map(([k, v]) => [k, +(v * 100).toFixed(2)])),
    growthUnit: 'percent, last minute vs first minute after warm-up (RSS and handles: median; heap: floor = minimum of the minute)',
    minutes,
    samples,
    passed: failures.length === 0,
    failures,
  };
  const out = flags.out ?? join(PACKAGE_ROOT, 'bench', 'results', `soak-${started.toISOString().slice(0, 10)}.json`);
  mkdirSync(join(out, '..'), { recursive: true });
  writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
  console.log(`growth after warm-up: RSS ${result.growth.rss} %, heap floor ${result.growth.heapFloor} %, handles ${result.growth.handles} %`);
  console.log(failures.length === 0 ? `PASS (${sent} requests) -> ${out}` : `FAIL:\n  ${failures.join('\n  ')}\n-> ${out}`);

  stopping = true;
  await envoy.stop();
  await sidecar.stop();
  await spicedb.stop();
  await externalJwks.stop();
  await internalJwks.stop();
  await app.close();
  await vmcontroller.close();
  process.exit(failures.length === 0 ? 0 : 1);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
