/**
 * Drives h2load (nghttp2) against Envoy and turns its output into numbers. Two shapes:
 * saturation (many streams, as fast as it goes: throughput) and a fixed offered rate
 * (`--rps` per client: latency percentiles from `--log-file`, one line per request).
 */
import { spawn } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { TICKS_PER_SECOND } from './proc.js';

export const H2LOAD = '/usr/bin/h2load';

export interface LoadTarget {
  /** Full URL, or the first URL when `uriFile` is set (h2load takes host and port from it). */
  readonly url: string;
  /** One URI per line; each client walks the list from the top (h2load `-i`). */
  readonly uriFile?: string;
  readonly headers: readonly string[];
}

export interface LoadShape {
  readonly clients: number;
  readonly streams: number;
  readonly seconds: number;
  readonly warmUpSeconds?: number;
  /** Per-client request rate; clients × rps is the offered rate. */
  readonly rpsPerClient?: number;
  readonly logFile?: string;
  /** CPU list for taskset, e.g. "0". */
  readonly cpus?: string;
}

export interface LoadResult {
  readonly rps: number;
  readonly total: number;
  readonly succeeded: number;
  readonly failed: number;
  readonly status2xx: number;
  readonly statusOther: number;
  /** CPU seconds h2load itself used (it shares a core with Envoy). */
  readonly loadGenCpuSeconds: number;
  readonly raw: string;
}

function num(pattern: RegExp, text: string): number {
  const match = pattern.exec(text);
  return match ? Number(match[1]) : Number.NaN;
}

export function parseH2loadOutput(text: string): Omit<LoadResult, 'loadGenCpuSeconds' | 'raw'> {
  const s2 = num(/status codes: (\d+) 2xx/, text);
  const s3 = num(/status codes: \d+ 2xx, (\d+) 3xx/, text);
  const s4 = num(/status codes: \d+ 2xx, \d+ 3xx, (\d+) 4xx/, text);
  const s5 = num(/status codes: \d+ 2xx, \d+ 3xx, \d+ 4xx, (\d+) 5xx/, text);
  return {
    rps: num(/finished in [\d.]+m?s, ([\d.]+) req\/s/, text),
    total: num(/requests: (\d+) total/, text),
    succeeded: num(/(\d+) succeeded/, text),
    failed: num(/(\d+) failed/, text),
    status2xx: s2,
    statusOther: s3 + s4 + s5,
  };
}

export async function runH2load(target: LoadTarget, shape: LoadShape): Promise<LoadResult> {
  const args = ['-t', '1', '-c', String(shape.clients), '-m', String(shape.streams), '-D', String(shape.seconds)];
  if (shape.warmUpSeconds) args.push(`--warm-up-time=${shape.warmUpSeconds}`);
  if (shape.rpsPerClient) args.push(`--rps=${shape.rpsPerClient}`);
  if (shape.logFile) args.push(`--log-file=${shape.logFile}`);
  for (const header of target.headers) args.push('-H', header);
  if (target.uriFile) args.push('-i', target.uriFile);
  else args.push(target.url);
  const command = shape.cpus ? ['taskset', '-c', shape.cpus, H2LOAD, ...args] : [H2LOAD, ...args];
  // A shell parent reaps h2load and then reads its own cutime/cstime: the load generator's CPU
  // time without racing its exit.
  const script = '"$@"; rc=$?; set -- $(sed "s/.*) //" /proc/$$/stat); echo "BENCH_CHILD_TICKS ${14} ${15}"; exit $rc';
  const output = await new Promise<{ code: number | null; text: string }>((resolve) => {
    const child = spawn('bash', ['-c', script, 'h2load', ...command], { stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    child.stdout.on('data', (chunk: Buffer) => (text += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (text += chunk.toString()));
    child.once('exit', (code) => resolve({ code, text }));
  });
  const parsed = parseH2loadOutput(output.text);
  const ticks = /BENCH_CHILD_TICKS (\d+) (\d+)/.exec(output.text);
  const loadGenCpuSeconds = ticks ? (Number(ticks[1]) + Number(ticks[2])) / TICKS_PER_SECOND : Number.NaN;
  if (output.code !== 0 || !Number.isFinite(parsed.rps)) {
    throw new Error(`h2load failed (exit ${output.code}): ${output.text.slice(-2000)}`);
  }
  return { ...parsed, loadGenCpuSeconds, raw: output.text };
}

export interface Percentiles {
  readonly count: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
  readonly mean: number;
  /** Requests per second actually completed over the kept window. */
  readonly achievedRps: number;
  readonly non2xx: number;
}

/** Nearest-rank percentile of a sorted array. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] as number;
}

/**
 * Latencies in milliseconds from an h2load log (`start µs \t status \t duration µs`). The first
 * `skipSeconds` are dropped: connection set-up and the first JIT-cold requests are not the
 * steady state the fixed-rate figure is about.
 */
export function percentilesFromLog(file: string, skipSeconds: number): Percentiles {
  const rows: Array<[number, number, number]> = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line) continue;
    const [start, status, duration] = line.split('\t').map(Number);
    if (start === undefined || status === undefined || duration === undefined || Number.isNaN(duration)) continue;
    rows.push([start, status, duration]);
  }
  if (rows.length === 0) throw new Error(`h2load log ${file} is empty`);
  let first = Infinity;
  let last = -Infinity;
  for (const row of rows) {
    if (row[0] < first) first = row[0];
    if (row[0] > last) last = row[0];
  }
  const from = first + skipSeconds * 1e6;
  const kept = rows.filter((row) => row[0] >= from);
  const durations = kept.map((row) => row[2] / 1000).sort((a, b) => a - b);
  const window = (last - from) / 1e6;
  const sum = durations.reduce((a, b) => a + b, 0);
  return {
    count: durations.length,
    p50: percentile(durations, 50),
    p90: percentile(durations, 90),
    p99: percentile(durations, 99),
    p999: percentile(durations, 99.9),
    max: durations[durations.length - 1] ?? Number.NaN,
    mean: sum / Math.max(1, durations.length),
    achievedRps: window > 0 ? durations.length / window : Number.NaN,
    non2xx: kept.filter((row) => row[1] < 200 || row[1] > 299).length,
  };
}

export function cleanup(dir: string, name: string): void {
  rmSync(join(dir, name), { force: true });
}
