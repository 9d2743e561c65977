/** Latency percentiles of one fixed-rate round, from one sample per request. */

export interface LatencySample {
  /** When the request was sent, milliseconds on any monotonic-enough clock. */
  readonly sentMs: number;
  /** HTTP status; 0 when the request failed without one (timeout, reset). */
  readonly status: number;
  readonly latencyMs: number;
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
 * Drops the first `skipSeconds` (connection set-up and JIT-cold requests are not the steady state
 * a fixed-rate figure is about) and summarises the rest.
 */
export function summarize(samples: readonly LatencySample[], skipSeconds: number): Percentiles {
  if (samples.length === 0) throw new Error('no latency samples');
  let first = Infinity;
  let last = -Infinity;
  for (const sample of samples) {
    if (sample.sentMs < first) first = sample.sentMs;
    if (sample.sentMs > last) last = sample.sentMs;
  }
  const from = first + skipSeconds * 1000;
  const kept = samples.filter((sample) => sample.sentMs >= from);
  const latencies = kept.map((sample) => sample.latencyMs).sort((a, b) => a - b);
  const windowSeconds = (last - from) / 1000;
  const sum = latencies.reduce((a, b) => a + b, 0);
  return {
    count: latencies.length,
    p50: percentile(latencies, 50),
    p90: percentile(latencies, 90),
    p99: percentile(latencies, 99),
    p999: percentile(latencies, 99.9),
    max: latencies[latencies.length - 1] ?? Number.NaN,
    mean: sum / Math.max(1, latencies.length),
    achievedRps: windowSeconds > 0 ? latencies.length / windowSeconds : Number.NaN,
    non2xx: kept.filter((sample) => sample.status < 200 || sample.status > 299).length,
  };
}
