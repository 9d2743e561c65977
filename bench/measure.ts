/**
 * One scenario's measurement: a warm-up, then saturation rounds (throughput) and fixed-rate rounds
 * (latency percentiles), with CPU and RSS of the processes involved and an estimate of the CPU
 * that processes outside the benchmark used meanwhile. A round disturbed by outside load is rerun.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runH2load } from './h2load.js';
import type { LoadShape, LoadTarget } from './h2load.js';
import type { Percentiles } from './percentiles.js';
import { coresUsed, sampleMachine, sampleProcess, TICKS_PER_SECOND } from '../dev/proc.js';
import type { ProcSample } from '../dev/proc.js';
import { runVegeta } from './vegeta.js';
import type { ShapeSpec } from '../dev/bench/scenarios.js';

export interface Budget {
  readonly quick: boolean;
  readonly warmUpSeconds: number;
  readonly saturationSeconds: number;
  readonly rateSeconds: number;
  readonly rounds: number;
  /** Offered rate for the latency rounds, requests per second. */
  readonly offeredRps: number;
  /** Outside CPU (cores) above which a round counts as disturbed and is rerun (full runs only). */
  readonly noisyCores: number;
  readonly maxReruns: number;
}

export const FULL: Budget = { quick: false, warmUpSeconds: 3, saturationSeconds: 8, rateSeconds: 10, rounds: 3, offeredRps: 1000, noisyCores: 0.25, maxReruns: 1 };
export const QUICK: Budget = { quick: true, warmUpSeconds: 1, saturationSeconds: 3, rateSeconds: 3, rounds: 1, offeredRps: 1000, noisyCores: Infinity, maxReruns: 0 };

/** Processes whose CPU and RSS a scenario reports; `authorizer` is the one the comparison is about. */
export interface Watched {
  readonly envoy: number;
  readonly authorizer?: number;
  /** e.g. SpiceDB behind the sidecar. */
  readonly backends?: Readonly<Record<string, number>>;
}

interface CpuBreakdown {
  readonly envoy: number | undefined;
  readonly authorizer: number | undefined;
  readonly backends: Readonly<Record<string, number | undefined>>;
  readonly loadGenerator: number;
  /** Machine busy time not accounted for by the above (other users of this machine), in cores. */
  readonly outside: number;
}

export interface SaturationRound {
  readonly rps: number;
  readonly requests: number;
  readonly non2xx: number;
  readonly cpu: CpuBreakdown;
  readonly reruns: number;
}

export interface RateRound extends Percentiles {
  readonly cpu: CpuBreakdown;
  readonly reruns: number;
}

export interface ScenarioMeasurement {
  readonly saturationShape: ShapeSpec;
  /** Offered rate of the latency rounds (req/s). */
  readonly offeredRps: number;
  readonly saturation: readonly SaturationRound[];
  readonly rate: readonly RateRound[];
  /** Median over rounds. */
  readonly rps: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly authorizerCores: { readonly saturation: number | undefined; readonly atOfferedRate: number | undefined };
  readonly rssKb: Readonly<Record<string, number | undefined>>;
}

export const median = (values: readonly number[]): number => {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
};

interface Snapshot {
  readonly at: number;
  readonly machine: ReturnType<typeof sampleMachine>;
  readonly envoy: ProcSample | undefined;
  readonly authorizer: ProcSample | undefined;
  readonly backends: Record<string, ProcSample | undefined>;
}

function snapshot(watched: Watched): Snapshot {
  const backends: Record<string, ProcSample | undefined> = {};
  for (const [name, pid] of Object.entries(watched.backends ?? {})) backends[name] = sampleProcess(pid);
  return {
    at: performance.now(),
    machine: sampleMachine(),
    envoy: sampleProcess(watched.envoy),
    authorizer: watched.authorizer === undefined ? undefined : sampleProcess(watched.authorizer),
    backends,
  };
}

function breakdown(before: Snapshot, after: Snapshot, loadGenCpuSeconds: number): CpuBreakdown {
  const seconds = (after.at - before.at) / 1000;
  const envoy = coresUsed(before.envoy, after.envoy, seconds);
  const authorizer = coresUsed(before.authorizer, after.authorizer, seconds);
  const backends: Record<string, number | undefined> = {};
  for (const name of Object.keys(after.backends)) backends[name] = coresUsed(before.backends[name], after.backends[name], seconds);
  const loadGenerator = loadGenCpuSeconds / seconds;
  const machine = (after.machine.busy - before.machine.busy) / TICKS_PER_SECOND / seconds;
  const ours = (envoy ?? 0) + (authorizer ?? 0) + Object.values(backends).reduce<number>((a, b) => a + (b ?? 0), 0) + (Number.isFinite(loadGenerator) ? loadGenerator : 0);
  // The orchestrating node process idles during a round; its few ms land in `outside`.
  return { envoy, authorizer, backends, loadGenerator, outside: Math.max(0, machine - ours) };
}

export interface MeasureOptions {
  readonly target: LoadTarget;
  readonly watched: Watched;
  readonly budget: Budget;
  readonly saturation: ShapeSpec;
  /** taskset CPU list for the load generators. */
  readonly loadCpus: string | undefined;
  /**
   * Called before every load run (warm-up included) for its target: lets the uncached scenario
   * hand each run its own slice of distinct resources. Defaults to `target`.
   */
  readonly targetForRun?: (run: number) => LoadTarget;
  /**
   * Cap the offered rate at this fraction of the measured saturation throughput: a rate the
   * system cannot sustain measures queueing, not latency (the uncached scenario).
   */
  readonly rateCapFraction?: number;
  /** Skip the saturation rounds (scaling scenarios only need latency). */
  readonly latencyOnly?: boolean;
  readonly log: (line: string) => void;
}

export async function measureScenario(options: MeasureOptions): Promise<ScenarioMeasurement> {
  const { watched, budget, log } = options;
  let runs = 0;
  const nextTarget = (): LoadTarget => options.targetForRun?.(runs++) ?? options.target;
  const dir = mkdtempSync(join(tmpdir(), 'jwtauth-bench-load-'));
  const saturationShape = (seconds: number): LoadShape => ({ clients: options.saturation.clients, streams: options.saturation.streams, seconds, cpus: options.loadCpus });

  const warm = await runH2load(nextTarget(), saturationShape(budget.warmUpSeconds));
  if (warm.status2xx === 0) throw new Error(`warm-up got no 2xx answers:\n${warm.raw.slice(-1500)}`);

  const saturation: SaturationRound[] = [];
  if (!options.latencyOnly) {
    for (let round = 0; round < budget.rounds; round++) {
      // A disturbed round is rerun; of the attempts, the one with the least outside CPU is kept.
      let kept: SaturationRound | undefined;
      for (let attempt = 0; attempt <= budget.maxReruns; attempt++) {
        const before = snapshot(watched);
        const result = await runH2load(nextTarget(), saturationShape(budget.saturationSeconds));
        const cpu = breakdown(before, snapshot(watched), result.loadGenCpuSeconds);
        const entry: SaturationRound = { rps: result.rps, requests: result.total, non2xx: result.total - result.status2xx, cpu, reruns: attempt };
        log(`    saturation round ${round + 1}${attempt ? ` (rerun ${attempt})` : ''}: ${result.rps.toFixed(0)} req/s, non-2xx ${entry.non2xx}, authorizer ${fmt(cpu.authorizer)} cores,${backendCpu(cpu)} envoy ${fmt(cpu.envoy)}, h2load ${fmt(cpu.loadGenerator)}, outside ${fmt(cpu.outside)}`);
        if (!kept || cpu.outside < kept.cpu.outside) kept = entry;
        if (cpu.outside <= budget.noisyCores) break;
      }
      if (kept) saturation.push(kept);
    }
  }

  const saturationRps = median(saturation.map((r) => r.rps));
  const offeredRps =
    options.rateCapFraction !== undefined && Number.isFinite(saturationRps) ? Math.min(budget.offeredRps, Math.round((options.rateCapFraction * saturationRps) / 10) * 10) : budget.offeredRps;
  const rate: RateRound[] = [];
  for (let round = 0; round < budget.rounds; round++) {
    let kept: RateRound | undefined;
    for (let attempt = 0; attempt <= budget.maxReruns; attempt++) {
      const before = snapshot(watched);
      const result = await runVegeta(nextTarget(), { rps: offeredRps, seconds: budget.rateSeconds, skipSeconds: budget.quick ? 0.5 : 1, dir, name: `rate-${round}-${attempt}`, cpus: options.loadCpus });
      const cpu = breakdown(before, snapshot(watched), result.loadGenCpuSeconds);
      const percentiles = result.percentiles;
      log(`    ${offeredRps} req/s round ${round + 1}${attempt ? ` (rerun ${attempt})` : ''}: p50 ${percentiles.p50.toFixed(3)} p90 ${percentiles.p90.toFixed(3)} p99 ${percentiles.p99.toFixed(3)} ms (${percentiles.achievedRps.toFixed(0)} req/s achieved, non-2xx ${percentiles.non2xx}), authorizer ${fmt(cpu.authorizer)} cores,${backendCpu(cpu)} outside ${fmt(cpu.outside)}`);
      const entry: RateRound = { ...percentiles, cpu, reruns: attempt };
      if (!kept || cpu.outside < kept.cpu.outside) kept = entry;
      if (cpu.outside <= budget.noisyCores) break;
    }
    if (kept) rate.push(kept);
  }

  const rssKb: Record<string, number | undefined> = { envoy: sampleProcess(watched.envoy)?.rssKb };
  if (watched.authorizer !== undefined) rssKb.authorizer = sampleProcess(watched.authorizer)?.rssKb;
  for (const [name, pid] of Object.entries(watched.backends ?? {})) rssKb[name] = sampleProcess(pid)?.rssKb;

  return {
    saturationShape: options.saturation,
    offeredRps,
    saturation,
    rate,
    rps: saturationRps,
    p50: median(rate.map((r) => r.p50)),
    p90: median(rate.map((r) => r.p90)),
    p99: median(rate.map((r) => r.p99)),
    authorizerCores: {
      saturation: watched.authorizer === undefined ? undefined : median(saturation.map((r) => r.cpu.authorizer ?? Number.NaN)),
      atOfferedRate: watched.authorizer === undefined ? undefined : median(rate.map((r) => r.cpu.authorizer ?? Number.NaN)),
    },
    rssKb,
  };
}

/**
 * One measurement out of the passes of a scenario: a single pass, or one per round when it takes
 * turns with another scenario (scenarios.ts, `alternatesRounds`). Every round of every pass,
 * medians over all of them, RSS after the last.
 */
export function combineMeasurements(passes: readonly ScenarioMeasurement[]): ScenarioMeasurement {
  const last = passes.at(-1);
  if (last === undefined) throw new Error('no measurement to combine');
  const saturation = passes.flatMap((pass) => pass.saturation);
  const rate = passes.flatMap((pass) => pass.rate);
  const authorizerMedian = (rounds: ReadonlyArray<{ readonly cpu: CpuBreakdown }>): number | undefined =>
    rounds.every((r) => r.cpu.authorizer === undefined) ? undefined : median(rounds.map((r) => r.cpu.authorizer ?? Number.NaN));
  return {
    saturationShape: last.saturationShape,
    offeredRps: last.offeredRps,
    saturation,
    rate,
    rps: median(saturation.map((r) => r.rps)),
    p50: median(rate.map((r) => r.p50)),
    p90: median(rate.map((r) => r.p90)),
    p99: median(rate.map((r) => r.p99)),
    authorizerCores: { saturation: authorizerMedian(saturation), atOfferedRate: authorizerMedian(rate) },
    rssKb: last.rssKb,
  };
}

function backendCpu(cpu: CpuBreakdown): string {
  return Object.entries(cpu.backends).map(([name, cores]) => ` ${name} ${fmt(cores)},`).join('');
}

export function fmt(value: number | undefined, digits = 2): string {
  return value === undefined || !Number.isFinite(value) ? '-' : value.toFixed(digits);
}
