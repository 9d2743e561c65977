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
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { PACKAGE_ROOT } from '../src/base/package-root.js';
import { startEchoUpstream } from '../dev/echo-upstream.js';
import type { EchoUpstream } from '../dev/echo-upstream.js';
import { startEnvoy } from '../dev/envoy.js';
import type { RunningEnvoy } from '../dev/envoy.js';
import { JwksServer, jwks, makeSigningKey } from '../dev/jwt-fixtures.js';
import type { SigningKey } from '../dev/jwt-fixtures.js';
import { launchSidecar, writeSidecarConfig } from '../dev/sidecar.js';
import type { SidecarProcess } from '../dev/sidecar.js';
import { startSpicedb } from '../dev/spicedb.js';
import type { SpicedbServer } from '../dev/spicedb.js';
import { relationships, SCHEMA, sidecarConfig, userToken } from '../dev/hardening/fixtures.js';
import { LoadClient } from '../dev/hardening/load.js';
import type { LoadResult } from '../dev/hardening/load.js';

interface SoakOptions {
  readonly durationS: number;
  readonly warmupS: number;
  readonly rate: number;
  readonly limit: number;
  readonly sampleS: number;
  readonly out: string | undefined;
}

/** The options, or undefined when they are not a soak that can pass (the caller prints the usage). */
function parseSoakOptions(args: readonly string[]): SoakOptions | undefined {
  const { values: flags } = parseArgs({
    args: [...args],
    options: {
      duration: { type: 'string', default: '600' },
      warmup: { type: 'string', default: '120' },
      rate: { type: 'string', default: '200' },
      limit: { type: 'string', default: '0.10' },
      'sample-every': { type: 'string', default: '2' },
      out: { type: 'string' },
    },
  });
  const options = {
    durationS: Number(flags.duration),
    warmupS: Number(flags.warmup),
    rate: Number(flags.rate),
    limit: Number(flags.limit),
    sampleS: Number(flags['sample-every']),
    out: flags.out,
  };
  const numbers = [options.durationS, options.warmupS, options.rate, options.limit, options.sampleS];
  // The verdict compares whole minutes after the warm-up: there must be at least one.
  if (!numbers.every((n) => Number.isFinite(n) && n >= 0) || options.durationS <= options.warmupS + 60) return undefined;
  return options;
}

const USAGE = 'usage: soak [--duration S] [--warmup S] [--rate RPS] [--limit FRACTION]; duration must exceed warm-up by at least 60 s';

const CLOUDS = 64;
const MiB = 1024 * 1024;

interface Sample {
  readonly t: number;
  readonly rss: number;
  readonly heapUsed: number;
  readonly lag: number;
  readonly handles: number;
}

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

/** Counts by key ("class status reason", or a problem), for the totals and the failures. */
class Tally extends Map<string, number> {
  bump(key: string): void {
    this.set(key, (this.get(key) ?? 0) + 1);
  }
}

/** Every process and server the soak runs, started in order: the sidecar needs SpiceDB and the JWKS, Envoy the sidecar. */
interface SoakStack {
  readonly spicedb: SpicedbServer;
  readonly externalKey: SigningKey;
  readonly sidecar: SidecarProcess;
  readonly envoy: RunningEnvoy;
  stop(): Promise<void>;
}

async function startStack(work: string): Promise<SoakStack> {
  const spicedb = await startSpicedb({ schema: SCHEMA, relationships: relationships(CLOUDS), name: 'soak-spicedb' });
  const externalKey = await makeSigningKey('ES256', 'ext-1');
  const internalKey = await makeSigningKey('RS256', 'mesh-1');
  const externalJwks = await new JwksServer().start(jwks(externalKey));
  const internalJwks = await new JwksServer().start(jwks(internalKey));
  const app: EchoUpstream = await startEchoUpstream();
  const vmcontroller: EchoUpstream = await startEchoUpstream();
  const config = sidecarConfig({ spicedbEndpoint: spicedb.endpoint, spicedbKeyEnv: 'SOAK_SPICEDB_KEY', externalJwksUrl: externalJwks.url, internalJwksUrl: internalJwks.url });
  const sidecar = await launchSidecar({ configFile: writeSidecarConfig(config, work), env: { SOAK_SPICEDB_KEY: spicedb.presharedKey }, stopGraceMs: 5000 });
  // The deployed envoy/envoy.yaml, only its ports changed.
  const envoy = await startEnvoy({ sidecar: sidecar.grpcPort, app: app.port, vmcontroller: vmcontroller.port });
  const stop = async (): Promise<void> => {
    await envoy.stop();
    await sidecar.stop();
    await spicedb.stop();
    await externalJwks.stop();
    await internalJwks.stop();
    await app.close();
    await vmcontroller.close();
  };
  return { spicedb, externalKey, sidecar, envoy, stop };
}

/** Reports the sidecar's exit as it happens; `exit` says it for the verdict, unless the soak stopped it. */
function watchSidecarExit(sidecar: SidecarProcess): { exit(): string | undefined; stopping(): void } {
  let exit: string | undefined;
  let stopping = false;
  void sidecar.process.exited.then((code) => {
    if (stopping) return;
    exit = `sidecar exited (code ${code}, signal ${sidecar.process.child.signalCode}) at ${new Date().toISOString()}; last output:\n${sidecar.process.output().slice(-4000)}`;
    console.error(exit);
  });
  return { exit: () => exit, stopping: () => (stopping = true) };
}

/** The steady load: its totals, and what the minute so far has seen. */
interface SteadyLoad {
  readonly counts: Tally;
  readonly unexpected: Tally;
  sent(): number;
  /** The requests and latencies since the last call, for the minute's line. */
  takeMinute(): { readonly requests: number; readonly latencies: readonly number[] };
  stop(): Promise<void>;
}

/** The mix: 60 % allowed, 15 % denied, 10 % never-seen tokens, 15 % egress (`mix` in the results). */
async function sendOne(i: number, stack: SoakStack, clients: { ingress: LoadClient; egress: LoadClient }, tokens: { alice: string; bob: string }): Promise<{ cls: RequestClass; result: Omit<LoadResult, 'tag'> }> {
  const pick = i % 20;
  const path = `/v1/clouds/cl${i % CLOUDS}/vms`;
  if (pick < 12) return { cls: 'allowed', result: await clients.ingress.request({ path, headers: { authorization: `Bearer ${tokens.alice}` } }, `a${i}`) };
  if (pick < 15) return { cls: 'denied', result: await clients.ingress.request({ path, headers: { authorization: `Bearer ${tokens.bob}` } }, `d${i}`) };
  if (pick < 17) {
    // A never-seen token and subject: signature verification and a SpiceDB call every time.
    const token = await userToken(stack.externalKey, `u${i}`, { expiresIn: 30 });
    return { cls: 'fresh_token', result: await clients.ingress.request({ path, headers: { authorization: `Bearer ${token}` } }, `f${i}`) };
  }
  return { cls: 'egress', result: await clients.egress.request({ path: '/vm.v1/List', authority: 'vmcontroller' }, `e${i}`) };
}

/** Calls `send` `rate` times a second, spread over 10 ms ticks, without waiting for the calls; stop() waits for those in flight. */
function pace(rate: number, send: () => Promise<void>): { stop(): Promise<void> } {
  const intervalMs = 10;
  const perTick = rate / (1000 / intervalMs);
  let owed = 0;
  const inflight = new Set<Promise<void>>();
  const timer = setInterval(() => {
    owed += perTick;
    while (owed >= 1) {
      owed -= 1;
      const p = send().finally(() => inflight.delete(p));
      inflight.add(p);
    }
  }, intervalMs);
  return {
    async stop() {
      clearInterval(timer);
      await Promise.all(inflight);
    },
  };
}

/** Sends `rate` requests a second through Envoy until stopped, tallying each answer against its class's. */
async function startSteadyLoad(stack: SoakStack, options: SoakOptions): Promise<SteadyLoad> {
  const tokens = {
    alice: await userToken(stack.externalKey, 'alice', { expiresIn: options.durationS + 600 }),
    bob: await userToken(stack.externalKey, 'bob', { expiresIn: options.durationS + 600 }),
  };
  const clients = { ingress: new LoadClient(stack.envoy.ports.ingress, 256), egress: new LoadClient(stack.envoy.ports.egress, 256) };
  const counts = new Tally();
  const unexpected = new Tally();
  let latencies: number[] = [];
  let minuteRequests = 0;
  let sent = 0;
  let n = 0;
  const fire = async (): Promise<void> => {
    const { cls, result } = await sendOne(n++, stack, clients, tokens);
    sent++;
    minuteRequests++;
    latencies.push(result.end - result.start);
    const key = `${cls} ${result.status} ${result.reason ?? result.error ?? ''}`.trim();
    counts.bump(key);
    if (result.status !== EXPECTED[cls]) unexpected.bump(key);
  };
  const pacer = pace(options.rate, fire);
  return {
    counts,
    unexpected,
    sent: () => sent,
    takeMinute() {
      const minute = { requests: minuteRequests, latencies };
      minuteRequests = 0;
      latencies = [];
      return minute;
    },
    async stop() {
      await pacer.stop();
      clients.ingress.close();
      clients.egress.close();
    },
  };
}

/** Reads the sidecar's /metrics every `sampleS` seconds; a failed read counts as unexpected. */
function startSampling(sidecar: SidecarProcess, sampleS: number, unexpected: Tally): { readonly t0: number; readonly samples: Sample[]; stop(): void } {
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
      unexpected.bump(`metrics read failed: ${(error as Error).message}`);
    }
  };
  const timer = setInterval(() => void sample(), sampleS * 1000);
  return { t0, samples, stop: () => clearInterval(timer) };
}

function summarizeMinute(minute: number, load: SteadyLoad, samples: readonly Sample[]): Minute {
  const inMinute = samples.filter((s) => s.t > (minute - 1) * 60 && s.t <= minute * 60);
  const { requests, latencies } = load.takeMinute();
  return {
    minute,
    requests,
    rps: Math.round(requests / 60),
    p50Ms: +quantile(latencies, 0.5).toFixed(2),
    p99Ms: +quantile(latencies, 0.99).toFixed(2),
    rssMiB: +(median(inMinute.map((s) => s.rss)) / MiB).toFixed(1),
    heapUsedMiB: +(median(inMinute.map((s) => s.heapUsed)) / MiB).toFixed(1),
    heapFloorMiB: +(Math.min(...inMinute.map((s) => s.heapUsed)) / MiB).toFixed(1),
    lagMs: +(median(inMinute.map((s) => s.lag)) * 1000).toFixed(2),
    lagMaxMs: +(Math.max(...inMinute.map((s) => s.lag)) * 1000).toFixed(2),
    handles: median(inMinute.map((s) => s.handles)),
  };
}

/** Waits out each whole minute of the duration, printing its line. */
async function runMinutes(options: SoakOptions, load: SteadyLoad, sampling: ReturnType<typeof startSampling>): Promise<Minute[]> {
  const minutes: Minute[] = [];
  for (let minute = 1; minute <= Math.floor(options.durationS / 60); minute++) {
    await new Promise((r) => setTimeout(r, sampling.t0 + minute * 60_000 - Date.now()));
    const row = summarizeMinute(minute, load, sampling.samples);
    minutes.push(row);
    console.log(
      `minute ${String(minute).padStart(2)}: ${row.rps} req/s p50 ${row.p50Ms} ms p99 ${row.p99Ms} ms | RSS ${row.rssMiB} MiB heap ${row.heapUsedMiB} MiB (floor ${row.heapFloorMiB}) lag ${row.lagMs} ms (max ${row.lagMaxMs}) handles ${row.handles}`,
    );
  }
  return minutes;
}

interface Verdict {
  readonly baselineMinute: number;
  readonly growth: Record<'rss' | 'heapFloor' | 'handles', number>;
  readonly failures: string[];
}

/** Growth from the first minute after the warm-up to the last, against the limit; and every other failure. */
function judge(minutes: readonly Minute[], options: SoakOptions, unexpected: Tally, sidecarExit: string | undefined): Verdict {
  const firstAfterWarmup = minutes.find((m) => (m.minute - 1) * 60 >= options.warmupS) ?? minutes[0];
  const last = minutes[minutes.length - 1];
  if (!firstAfterWarmup || !last) throw new Error('no samples');
  const growth = {
    rss: last.rssMiB / firstAfterWarmup.rssMiB - 1,
    heapFloor: last.heapFloorMiB / firstAfterWarmup.heapFloorMiB - 1,
    handles: last.handles / firstAfterWarmup.handles - 1,
  };
  const failures: string[] = [];
  for (const [what, value] of Object.entries(growth)) {
    if (!(value < options.limit)) failures.push(`${what} grew ${(value * 100).toFixed(1)} % after warm-up (limit ${(options.limit * 100).toFixed(0)} %)`);
  }
  for (const [key, count] of unexpected) failures.push(`${count} × unexpected answer: ${key}`);
  if (sidecarExit !== undefined) failures.push(sidecarExit);
  return { baselineMinute: firstAfterWarmup.minute, growth, failures };
}

/** Writes the result JSON and prints the verdict. */
function report(started: Date, options: SoakOptions, load: SteadyLoad, minutes: readonly Minute[], samples: readonly Sample[], verdict: Verdict): void {
  const { failures } = verdict;
  const result = {
    date: started.toISOString(),
    machine: { node: process.version, cpus: cpus().length },
    settings: { durationSeconds: options.durationS, warmupSeconds: options.warmupS, rate: options.rate, limit: options.limit, sampleEverySeconds: options.sampleS },
    mix: { allowed: '60 % (alice, 64 clouds, decision cache 2 s)', denied: '15 % (bob)', fresh_token: '10 % (new subject each: verify + SpiceDB)', egress: '15 % (service token attached)' },
    totals: { requests: load.sent(), byClassStatusReason: Object.fromEntries(load.counts) },
    baselineMinute: verdict.baselineMinute,
    growth: Object.fromEntries(Object.entries(verdict.growth).map(([k, v]) => [k, +(v * 100).toFixed(2)])),
    growthUnit: 'percent, last minute vs first minute after warm-up (RSS and handles: median; heap: floor = minimum of the minute)',
    minutes,
    samples,
    passed: failures.length === 0,
    failures,
  };
  const out = options.out ?? join(PACKAGE_ROOT, 'bench', 'results', `soak-${started.toISOString().slice(0, 10)}.json`);
  mkdirSync(join(out, '..'), { recursive: true });
  writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
  console.log(`growth after warm-up: RSS ${result.growth.rss} %, heap floor ${result.growth.heapFloor} %, handles ${result.growth.handles} %`);
  console.log(failures.length === 0 ? `PASS (${load.sent()} requests) -> ${out}` : `FAIL:\n  ${failures.join('\n  ')}\n-> ${out}`);
}

/** Runs the soak; its exit code: 0 when it passed. */
async function soak(options: SoakOptions): Promise<number> {
  const started = new Date();
  const stack = await startStack(mkdtempSync(join(tmpdir(), 'jwtauth-soak-')));
  const sidecarExit = watchSidecarExit(stack.sidecar);
  const load = await startSteadyLoad(stack, options);
  const sampling = startSampling(stack.sidecar, options.sampleS, load.unexpected);
  console.log(`soak: ${options.durationS} s at ${options.rate} req/s (warm-up ${options.warmupS} s), sidecar pid ${stack.sidecar.process.child.pid}`);
  const minutes = await runMinutes(options, load, sampling);
  sampling.stop();
  await load.stop();
  const verdict = judge(minutes, options, load.unexpected, sidecarExit.exit());
  report(started, options, load, minutes, sampling.samples, verdict);
  sidecarExit.stopping();
  await stack.stop();
  return verdict.failures.length === 0 ? 0 : 1;
}

const options = parseSoakOptions(process.argv.slice(2));
if (options === undefined) {
  console.error(USAGE);
  process.exit(2);
}
soak(options).then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
