/**
 * Drives vegeta for the fixed-rate latency rounds: open-loop, requests evenly spaced at the
 * offered rate over HTTP/2 cleartext, one sample per request. (h2load's `--rps` sends in 100 Hz
 * bursts, so every request queued behind up to 9 of its own burst: that measured the load
 * generator's shape as much as the server.)
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LoadTarget } from './h2load.js';
import { summarize } from './percentiles.js';
import type { LatencySample, Percentiles } from './percentiles.js';
import { runMeasured } from '../dev/proc.js';
import { TOOLS_BIN } from '../dev/processes.js';

const VEGETA = join(TOOLS_BIN, 'vegeta');

export interface RateShape {
  readonly rps: number;
  readonly seconds: number;
  /** Leading seconds left out of the percentiles. */
  readonly skipSeconds: number;
  /** Where the targets and the binary results go, named after `name`. */
  readonly dir: string;
  readonly name: string;
  /** CPU list for taskset, e.g. "0". */
  readonly cpus?: string;
}

export interface RateResult {
  readonly percentiles: Percentiles;
  /** CPU seconds vegeta itself used (it shares a core with Envoy). */
  readonly loadGenCpuSeconds: number;
}

/** vegeta's targets file: a GET per URL, or one POST with the target's body file (`@file`). */
function targetsText(target: LoadTarget): string {
  if (target.body !== undefined) {
    if (target.uriFile !== undefined) throw new Error('a target with a body takes one URL, not a URI list');
    return `POST ${target.url}\n@${target.body}\n`;
  }
  const urls = target.uriFile ? readFileSync(target.uriFile, 'utf8').split('\n').filter(Boolean) : [target.url];
  return urls.map((url) => `GET ${url}\n`).join('\n');
}

export async function runVegeta(target: LoadTarget, shape: RateShape): Promise<RateResult> {
  const targets = join(shape.dir, `${shape.name}.targets`);
  writeFileSync(targets, targetsText(target));
  const output = join(shape.dir, `${shape.name}.bin`);
  const attack = [VEGETA, 'attack', '-h2c', `-rate=${shape.rps}/s`, `-duration=${shape.seconds}s`, `-targets=${targets}`, `-output=${output}`];
  for (const header of target.headers) attack.push('-header', header);
  const measured = await runMeasured(shape.cpus ? ['taskset', '-c', shape.cpus, ...attack] : attack);
  if (measured.code !== 0) throw new Error(`vegeta attack failed (exit ${measured.code}): ${measured.text.slice(-2000)}`);
  const encoded = await runMeasured([VEGETA, 'encode', '--to', 'json', output]);
  if (encoded.code !== 0) throw new Error(`vegeta encode failed (exit ${encoded.code}): ${encoded.text.slice(-2000)}`);
  return { percentiles: summarize(parseVegetaJson(encoded.text), shape.skipSeconds), loadGenCpuSeconds: measured.cpuSeconds };
}

/** `vegeta encode --to json`: one object per line; latency in nanoseconds, code 0 on a transport error. */
function parseVegetaJson(text: string): LatencySample[] {
  const samples: LatencySample[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    const row = JSON.parse(line) as { timestamp: string; code: number; latency: number };
    samples.push({ sentMs: Date.parse(row.timestamp), status: row.code, latencyMs: row.latency / 1e6 });
  }
  return samples;
}
