/**
 * Drives h2load (nghttp2) against Envoy at saturation (many streams, as fast as it goes) and turns
 * its summary into throughput figures. The fixed-rate latency rounds use vegeta (vegeta.ts).
 */
import { runMeasured } from '../dev/proc.js';

const H2LOAD = '/usr/bin/h2load';

export interface LoadTarget {
  /** Full URL, or the first URL when `uriFile` is set (h2load takes host and port from it). */
  readonly url: string;
  /** One URI per line; each client walks the list from the top (h2load `-i`). */
  readonly uriFile?: string;
  readonly headers: readonly string[];
  /** A file sent as the body of every request, which makes them POSTs (h2load -d): the gRPC scenarios' framed message. */
  readonly body?: string;
}

export interface LoadShape {
  readonly clients: number;
  readonly streams: number;
  readonly seconds: number;
  readonly warmUpSeconds?: number;
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

function parseH2loadOutput(text: string): Omit<LoadResult, 'loadGenCpuSeconds' | 'raw'> {
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
  for (const header of target.headers) args.push('-H', header);
  if (target.body !== undefined) args.push('-d', target.body);
  if (target.uriFile) args.push('-i', target.uriFile);
  else args.push(target.url);
  const output = await runMeasured(shape.cpus ? ['taskset', '-c', shape.cpus, H2LOAD, ...args] : [H2LOAD, ...args]);
  const parsed = parseH2loadOutput(output.text);
  if (output.code !== 0 || !Number.isFinite(parsed.rps)) {
    throw new Error(`h2load failed (exit ${output.code}): ${output.text.slice(-2000)}`);
  }
  return { ...parsed, loadGenCpuSeconds: output.cpuSeconds, raw: output.text };
}
