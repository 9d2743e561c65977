/**
 * What a scenario reads from the sidecar's /metrics: how much each series grew while it ran, the
 * figures its row reports from that growth, and the denials the load tools cannot see.
 */
import type { Exposition } from '../dev/prometheus.js';
import type { SidecarProcess } from '../dev/sidecar.js';
import type { RunningAuthorizer } from './authorizers.js';
import type { Log } from './log.js';
import type { RowReport } from '../dev/bench/scenarios.js';

export type Growth = ReadonlyMap<string, number>;

export function sidecarOf(authorizer: RunningAuthorizer): SidecarProcess {
  if (authorizer.sidecar === undefined) throw new Error('only the sidecar has the metrics this scenario reports');
  return authorizer.sidecar;
}

/** How much each series of the sidecar's metrics grew between two scrapes. */
export function growth(before: Exposition, after: Exposition): Map<string, number> {
  return new Map(after.samples.map((sample) => [sample.series, sample.value - (before.series.get(sample.series) ?? 0)]));
}

/** Every sidecar series' growth over several passes. */
export function summedGrowth(passes: ReadonlyArray<{ readonly grew: Growth }>): Map<string, number> {
  const sum = new Map<string, number>();
  for (const pass of passes) for (const [series, delta] of pass.grew) sum.set(series, (sum.get(series) ?? 0) + delta);
  return sum;
}

/**
 * The load tools cannot see a denial the scenario did not expect: h2load and vegeta count a gRPC
 * one (HTTP 200, grpc-status 7) as a success, ghz a denying CheckResponse as an OK call. The
 * sidecar's own count decides.
 */
export function requireNoDenials(grew: Growth): void {
  const denials = [...grew].filter(([series, delta]) => series.startsWith('jwtauth_checks_total{') && series.includes('decision="deny"') && delta > 0);
  if (denials.length > 0) throw new Error(`the sidecar denied requests the load sent: ${denials.map(([series, delta]) => `${series} +${delta}`).join(', ')}`);
}

/** The row's figures beside the measurement; logs the growth the scenario wants to see. */
export function extraFigures(reports: RowReport, grew: Growth, log: Log): Record<string, number> {
  const extra: Record<string, number> = {};
  for (const [name, series] of Object.entries(reports.counts ?? {})) extra[name] = grew.get(series) ?? 0;
  Object.assign(extra, reports.constants);
  const logged = reports.logsGrowth;
  if (logged !== undefined) {
    for (const [series, delta] of grew) {
      const ofMetric = logged.of.some((metric) => series === metric || series.startsWith(`${metric}{`));
      if (ofMetric && delta > 0 && !logged.except.some((part) => series.includes(part))) log(`    ${series} +${delta}`);
    }
  }
  if (reports.summary) log(`    ${reports.summary(extra)}`);
  return extra;
}
