/**
 * Guarantee: the Helm chart (charts/jwtauth-sidecar) lints, renders, and what it renders deploys.
 * For each values file under the chart's ci/ and the Kubernetes example's: `helm lint` passes,
 * every manifest of `helm template` validates against the Kubernetes API schemas, and the pod is
 * wired as examples.test.ts requires of the example (probes on reachable ports, container ports
 * against envoy.yaml, configuration mounted as directories, envoy.yaml agreeing with jwtauth.yaml
 * as `validate --envoy` judges it). examples/kubernetes/gateway-pod.yaml is the chart's rendering of
 * examples/kubernetes/values.yaml, byte for byte.
 */
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../../src/commands/dispatch.js';
import { PACKAGE_ROOT } from '../../src/base/package-root.js';
import { CHART, helm, renderChart } from '../support/helm.js';
import { gatewayPod, podWiringTests, validateManifest } from '../support/pod-wiring.js';
import type { GatewayPod } from '../support/pod-wiring.js';

const EXAMPLE_VALUES = join(PACKAGE_ROOT, 'examples', 'kubernetes', 'values.yaml');
/** How the example is rendered (scripts/render-kubernetes-example.sh says the same). */
const EXAMPLE_ARGS = ['-f', EXAMPLE_VALUES, '--set-file', `protoFiles.vmcontroller\\.proto=${join(PACKAGE_ROOT, 'examples', 'demo', 'vmcontroller.proto')}`];

const VALUES: readonly (readonly [string, readonly string[]])[] = [
  ...readdirSync(join(CHART, 'ci'))
    .filter((file) => file.endsWith('.yaml'))
    .map((file) => [`ci/${file}`, ['-f', join(CHART, 'ci', file)]] as const),
  ['examples/kubernetes/values.yaml', EXAMPLE_ARGS],
];

it('covers several values files (so an empty ci/ cannot pass)', () => {
  expect(VALUES.length).toBeGreaterThanOrEqual(5);
});

describe.each(VALUES)('the chart with %s', (_name, args) => {
  let rendered: ReturnType<typeof renderChart> | undefined;
  const render = (): ReturnType<typeof renderChart> => (rendered ??= renderChart(args));
  let pod: GatewayPod | undefined;
  const load = (): GatewayPod => (pod ??= gatewayPod(render().manifests, 'helm template'));

  it('passes helm lint --strict', () => {
    const run = helm(['lint', CHART, '--strict', '--namespace', 'cloud', ...args]);
    expect(run.status, `${run.stdout}${run.stderr}`).toBe(0);
  });

  it('renders manifests that validate against the Kubernetes API schemas', async () => {
    const { manifests } = render();
    expect(manifests.map((m) => m.kind)).toEqual(expect.arrayContaining(['ConfigMap', 'Deployment']));
    for (const manifest of manifests) await expect(validateManifest(manifest), `${manifest.kind} ${manifest.metadata?.name ?? ''}`).resolves.toBeUndefined();
  });

  podWiringTests(load);
});

describe('what the chart renders, beyond the pod', () => {
  it('a JWKS Service, a PodDisruptionBudget, and on request the Istio and Envoy Gateway policies', () => {
    const kinds = (args: readonly string[]): string[] => renderChart(args).manifests.map((m) => `${m.kind}/${m.metadata?.name ?? ''}`).sort();
    const base = ['ConfigMap/gwadmin-envoy', 'ConfigMap/gwadmin-jwtauth', 'Deployment/gwadmin', 'PodDisruptionBudget/gwadmin', 'Service/gwadmin-jwks'];
    expect(kinds([])).toEqual(base);
    expect(kinds(['-f', join(CHART, 'ci', 'workers-istio-values.yaml')])).toEqual([...base, 'AuthorizationPolicy/gwadmin-jwtauth', 'ServiceEntry/gwadmin-jwtauth-local'].sort());
    expect(kinds(['-f', join(CHART, 'ci', 'envoy-gateway-values.yaml')])).toEqual([...base, 'SecurityPolicy/gwadmin-jwtauth', 'Service/gwadmin-jwtauth'].sort());
  });

  it('renders the values it is given: workers, resources, image, upstreams', () => {
    const pod = gatewayPod(renderChart(['-f', join(CHART, 'ci', 'workers-istio-values.yaml'), '--set', 'image.tag=9.9.9']).manifests, 'workers');
    expect(pod.config.server.workers).toBe(4);
    expect((pod.container('jwtauth-sidecar') as { resources?: unknown }).resources).toEqual({ requests: { cpu: '4', memory: '512Mi' }, limits: { cpu: '4', memory: '1Gi' } });
    expect((pod.container('jwtauth-sidecar') as { image?: string }).image).toBe('registry.example.com/jwtauth-sidecar:9.9.9');
    expect(pod.config.server.listeners).toEqual([{ address: '127.0.0.1:9192', direction: 'inbound' }]);
    expect(pod.config.outbound?.upstreams.map((u) => u.audience)).toEqual(['vmcontroller']);
  });

  it('keeps the two configurations agreeing where they depend on each other: a slow SpiceDB deadline raises Envoy’s timeouts with it', () => {
    const pod = gatewayPod(renderChart(['--set', 'spicedb.deadlineMs=2500']).manifests, 'deadline');
    const ingress = pod.envoyConfigMap.data['envoy.yaml'] ?? '';
    expect(ingress).toMatch(/max_interval: 3\.000s/);
    expect(ingress).toMatch(/timeout: 7\.500s/);
  });

  it('its envoy.yaml passes `jwtauth-sidecar validate --envoy` beside its jwtauth.yaml, run as a user would', async () => {
    const pod = gatewayPod(renderChart(EXAMPLE_ARGS).manifests, 'example');
    const dir = mkdtempSync(join(tmpdir(), 'jwtauth-chart-'));
    for (const [key, text] of Object.entries(pod.sidecarConfigMap.data)) writeFileSync(join(dir, key), text);
    writeFileSync(join(dir, 'envoy.yaml'), pod.envoyConfigMap.data['envoy.yaml'] ?? '');
    let out = '';
    let err = '';
    const code = await runCli(['validate', '--config', join(dir, 'jwtauth.yaml'), '--envoy', join(dir, 'envoy.yaml')], { out: (t) => (out += `${t}\n`), err: (t) => (err += `${t}\n`), env: {} });
    // The Secret's files are not here, so preflight reports them; the Envoy check runs regardless.
    expect(err).toMatch(/signing-key\.pem/);
    expect(code).toBe(1);
    expect(`${out}${err}`).toMatch(/envoy\.yaml: 0 errors, 0 warnings \(2 ext_authz filters, 6 routes/);
  });

  it('examples/kubernetes/gateway-pod.yaml is the chart’s rendering of examples/kubernetes/values.yaml (bash scripts/render-kubernetes-example.sh)', () => {
    const file = readFileSync(join(PACKAGE_ROOT, 'examples', 'kubernetes', 'gateway-pod.yaml'), 'utf8');
    const body = file.slice(file.indexOf('\n---\n') + 1);
    expect(body, `regenerate it: bash scripts/render-kubernetes-example.sh (${relative(PACKAGE_ROOT, EXAMPLE_VALUES)})`).toBe(renderChart(EXAMPLE_ARGS).text);
  });
});
