import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ALLOW_REASONS, DENY_REASONS } from '../../src/core/decision.js';
import { Metrics, PrimaryMetrics } from '../../src/observability/metrics.js';

const docs = (name: string) => readFileSync(new URL(`../../docs/${name}`, import.meta.url), 'utf8');

async function exportedNames(): Promise<Set<string>> {
  // A sidecar's own with every feature in use (two series appear only then), and the worker-mode primary's.
  const sidecar = new Metrics({ processMetrics: false });
  sidecar.setTokenCacheSoonestExpiry(300);
  sidecar.observeSpicedbChecksPerCall(1);
  const registries = [sidecar.registry, new PrimaryMetrics({ processMetrics: false }).registry];
  return new Set((await Promise.all(registries.map((registry) => registry.getMetricsAsJSON()))).flat().map((m) => m.name));
}

describe('operator documentation stays true to the code', () => {
  it('docs/metrics.md lists exactly the metrics the sidecar exports', async () => {
    const documented = new Set([...docs('metrics.md').matchAll(/^\| `(jwtauth_[a-z_]+)` \|/gm)].map((m) => m[1]));
    expect(documented).toEqual(await exportedNames());
  });

  it('docs/troubleshooting.md explains every reason the sidecar can give', () => {
    const page = docs('troubleshooting.md');
    const missing = [...ALLOW_REASONS, ...Object.keys(DENY_REASONS)].filter((reason) => !page.includes(`\`${reason}\``));
    expect(missing).toEqual([]);
  });

  it('the Grafana dashboard is valid JSON and queries only metrics that exist', async () => {
    const dashboard = JSON.parse(readFileSync(new URL('../../examples/grafana-dashboard.json', import.meta.url), 'utf8')) as {
      panels: { targets?: { expr: string }[] }[];
    };
    const names = await exportedNames();
    const queried = dashboard.panels.flatMap((p) => p.targets ?? []).flatMap((t) => [...t.expr.matchAll(/\b(jwtauth_[a-z_]+)/g)].map((m) => m[1] ?? ''));
    expect(queried.length).toBeGreaterThan(5);
    const unknown = queried.filter((name) => !names.has(name) && !names.has(name.replace(/_(bucket|sum|count)$/, '')));
    expect(unknown).toEqual([]);
  });
});
