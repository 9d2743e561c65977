/**
 * The chart's optional Prometheus operator objects (serviceMonitor, prometheusRule): absent unless
 * asked for; when asked, the ServiceMonitor reaches every pod's admin port through the Service it
 * selects, and the PrometheusRule carries exactly the rules of examples/prometheus-rules.yaml,
 * which promtool accepts (test/e2e/prometheus-queries.test.ts evaluates them in a real Prometheus).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import { CHART, renderChart } from '../support/helm.js';
import type { Manifest } from '../support/pod-wiring.js';
import { RULES_FILE } from '../e2e/prometheus-expressions.js';
import { promtoolCheckRules } from '../e2e/prometheus-server.js';

interface Labelled {
  metadata: { name: string; labels?: Record<string, string> };
}
type MetricsService = Labelled & { spec: { clusterIP: string; selector: Record<string, string>; publishNotReadyAddresses: boolean; ports: { name: string; port: number; targetPort: string }[] } };
type ServiceMonitor = Labelled & { spec: { selector: { matchLabels: Record<string, string> }; namespaceSelector: { matchNames: string[] }; endpoints: { port: string; path: string }[] } };
type PrometheusRule = Labelled & { spec: unknown };
type Deployment = { spec: { template: { metadata: { labels: Record<string, string> }; spec: { containers: { name: string; ports?: { name: string }[] }[] } } } };

const ENABLED = ['--set', 'serviceMonitor.enabled=true', '--set', 'prometheusRule.enabled=true', '--set', 'serviceMonitor.labels.release=prom', '--set', 'prometheusRule.labels.release=prom'];

function find<T>(manifests: Manifest[], kind: string, name: string): T {
  const found = manifests.find((manifest) => manifest.kind === kind && manifest.metadata?.name === name);
  if (!found) throw new Error(`no ${kind}/${name} rendered`);
  return found as unknown as T;
}

describe('the chart with the Prometheus operator', () => {
  it('renders no ServiceMonitor, PrometheusRule or metrics Service by default', () => {
    const kinds = renderChart().manifests.map((manifest) => `${manifest.kind}/${manifest.metadata?.name ?? ''}`);
    expect(kinds.filter((kind) => /ServiceMonitor|PrometheusRule|-metrics$/.test(kind))).toEqual([]);
  });

  it('a ServiceMonitor whose Service reaches the sidecar admin port of every pod, ready or not', () => {
    const { manifests } = renderChart(ENABLED);
    const service = find<MetricsService>(manifests, 'Service', 'gwadmin-metrics');
    const monitor = find<ServiceMonitor>(manifests, 'ServiceMonitor', 'gwadmin-jwtauth');
    const pod = find<Deployment>(manifests, 'Deployment', 'gwadmin').spec.template;
    // The monitor selects this Service (and not the JWKS Service, which has no such port).
    expect(service.metadata.labels).toMatchObject(monitor.spec.selector.matchLabels);
    expect(find<Labelled>(manifests, 'Service', 'gwadmin-jwks').metadata.labels).not.toMatchObject(monitor.spec.selector.matchLabels);
    expect(monitor.spec.namespaceSelector.matchNames).toEqual(['cloud']);
    expect(monitor.spec.endpoints).toEqual([expect.objectContaining({ port: 'metrics', path: '/metrics' })]);
    expect(service.spec.ports).toEqual([{ name: 'metrics', port: 9190, targetPort: 'admin' }]);
    expect(service.spec).toMatchObject({ clusterIP: 'None', publishNotReadyAddresses: true });
    expect(pod.metadata.labels).toMatchObject(service.spec.selector);
    const sidecar = pod.spec.containers.find((container) => container.name === 'jwtauth-sidecar');
    expect(sidecar?.ports?.map((port) => port.name)).toContain('admin');
    expect(monitor.metadata.labels).toMatchObject({ release: 'prom' });
  });

  it('a PrometheusRule with exactly the shipped rule file, which promtool accepts', async () => {
    const shipped = readFileSync(RULES_FILE, 'utf8');
    expect(readFileSync(join(CHART, 'files', 'prometheus-rules.yaml'), 'utf8')).toBe(shipped);
    const rule = find<PrometheusRule>(renderChart(ENABLED).manifests, 'PrometheusRule', 'gwadmin-jwtauth');
    expect(rule.metadata.labels).toMatchObject({ release: 'prom' });
    expect(rule.spec).toEqual(parse(shipped));
    const dir = mkdtempSync(join(tmpdir(), 'jwtauth-rule-'));
    try {
      writeFileSync(join(dir, 'rules.yaml'), stringify(rule.spec));
      const { ok, output } = await promtoolCheckRules(join(dir, 'rules.yaml'));
      expect(output).toContain('SUCCESS: 7 rules found');
      expect(ok).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
