/**
 * Guarantee: every Envoy configuration this repository ships or runs agrees with the sidecar
 * configuration it runs beside, as `validate --envoy` judges it: envoy/envoy.yaml (which
 * dev/envoy.ts runs with only ports and Service names changed) with the Kubernetes
 * example's configuration, each of the demo's three Envoys with its sidecar, every Envoy the bench
 * generates (dev/bench/envoy-config.ts) with the sidecar variant it runs, and what Istio and Envoy
 * Gateway generate from examples/istio and examples/envoy-gateway (test/support/control-planes.ts)
 * with those examples' configurations. A finding fails the test, so a change to either side that
 * makes them disagree is caught here, not in production.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { benchEnvoyConfig, benchListener } from '../../dev/bench/envoy-config.js';
import { makeKeys, sidecarConfig } from '../../dev/bench/fixtures.js';
import { SCENARIO_GROUPS } from '../../dev/bench/scenarios.js';
import { loadConfigFile, parseConfigText, validateConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { analyseEnvoyConfig } from '../../src/envoy-config/analyse.js';
import type { EnvoyFinding } from '../../src/envoy-config/analyse.js';
import { collectEnvoyConfig } from '../../src/envoy-config/collect.js';
import { sidecarExpectations } from '../../src/envoy-config/sidecar-expectations.js';
import { PACKAGE_ROOT } from '../../src/base/package-root.js';
import { envoyGatewayConfig, istioEnvoyConfig } from '../support/control-planes.js';

const EXAMPLES = join(PACKAGE_ROOT, 'examples');
const envoyFile = (path: string): unknown => parse(readFileSync(path, 'utf8'), { merge: true });

function check(envoy: unknown, config: Config): { findings: readonly EnvoyFinding[]; filters: number } {
  return analyseEnvoyConfig(collectEnvoyConfig(envoy), sidecarExpectations(config));
}
const described = (findings: readonly EnvoyFinding[]): string => findings.map((f) => `${f.severity} [${f.check}] ${f.at}: ${f.problem}`).join('\n');

/** The jwtauth.yaml of a ConfigMap in an example manifest, loaded as the sidecar would. */
function exampleConfig(file: string, configMap: string): Config {
  const documents = parseAllDocuments(readFileSync(join(EXAMPLES, file), 'utf8')).map((d) => d.toJS() as { kind?: string; metadata?: { name?: string }; data?: Record<string, string> });
  const text = documents.find((d) => d.kind === 'ConfigMap' && d.metadata?.name === configMap)?.data?.['jwtauth.yaml'];
  if (text === undefined) throw new Error(`${file} has no ConfigMap ${configMap} with jwtauth.yaml`);
  return parseConfigText(text, `${file} ${configMap}`, join(EXAMPLES, 'demo')).config;
}

describe('every Envoy configuration in the repository passes validate --envoy', () => {
  it('envoy/envoy.yaml, with the Kubernetes example’s configuration', () => {
    const result = check(envoyFile(join(PACKAGE_ROOT, 'envoy', 'envoy.yaml')), exampleConfig('kubernetes/gateway-pod.yaml', 'gwadmin-jwtauth'));
    expect(result.filters).toBe(2);
    expect(result.findings, described(result.findings)).toEqual([]);
  });

  it.each(['gwadmin', 'vmcontroller', 'spicedb'])('the demo’s %s Envoy, with its sidecar', (name) => {
    const result = check(envoyFile(join(EXAMPLES, 'demo', 'envoy', `${name}.envoy.yaml`)), loadConfigFile(join(EXAMPLES, 'demo', 'sidecars', `${name}.yaml`)).config);
    expect(result.filters).toBeGreaterThan(0);
    expect(result.findings, described(result.findings)).toEqual([]);
  });

  describe('every Envoy the bench generates, with the sidecar variant it runs', () => {
    const keys = makeKeys(mkdtempSync(join(tmpdir(), 'jwtauth-bench-keys-')));
    const AUTHZ_PORT = 19191;
    const groups = SCENARIO_GROUPS.flatMap((group) => (group.starts.kind === 'sidecar' ? [{ group, variant: group.starts.variant, name: group.starts.name }] : []));

    it('finds the bench’s sidecar groups (so an empty list cannot pass)', () => {
      expect(groups.length).toBeGreaterThan(3);
    });

    it.each(groups.map((g) => [g.name, g] as const))('%s', (_name, { group, variant }) => {
      const envoy = benchEnvoyConfig(group.envoy.map((listener, i) => benchListener(listener, 20_000 + i, keys.jwks)), 19_901, AUTHZ_PORT);
      const input = sidecarConfig(keys, 'spicedb:50051', 'SPICEDB_KEY', variant) as { server: Record<string, unknown> };
      const config = validateConfig({ ...input, server: { ...input.server, grpcAddress: `127.0.0.1:${AUTHZ_PORT}` } }, 'bench', PACKAGE_ROOT).config;
      const result = check(envoy, config);
      expect(result.filters).toBeGreaterThan(0);
      expect(result.findings, described(result.findings)).toEqual([]);
    });
  });

  /**
   * The control planes' clusters carry the placeholder port dev/envoy.ts rewrites; here
   * each gets the port it has in a cluster: Istio's from the ServiceEntry port in its name
   * (outbound|9192||jwtauth-sidecar.local), Envoy Gateway's from the backendRef (its EDS endpoints
   * are the pods' IPs at the Service's targetPort, 9192 in the example).
   */
  function withClusterPorts(yaml: string, portOf: (cluster: string) => number | undefined): unknown {
    const config = parse(yaml) as { static_resources: { clusters: { name: string; load_assignment: { endpoints: { lb_endpoints: { endpoint: { address: { socket_address: { port_value: number } } } }[] }[] } }[] } };
    for (const cluster of config.static_resources.clusters) {
      const port = portOf(cluster.name);
      if (port === undefined) continue;
      for (const group of cluster.load_assignment.endpoints) for (const lb of group.lb_endpoints) lb.endpoint.address.socket_address.port_value = port;
    }
    return config;
  }

  it('what istiod generates from examples/istio, with its configuration', () => {
    const envoy = withClusterPorts(istioEnvoyConfig(9193), (name) => (/^outbound\|(\d+)\|\|jwtauth-sidecar\.local$/.exec(name) ? Number(name.split('|')[1]) : undefined));
    const result = check(envoy, exampleConfig('istio/gwadmin.yaml', 'gwadmin-jwtauth'));
    expect(result.filters).toBe(2);
    expect(result.findings, described(result.findings)).toEqual([]);
  });

  it('what Envoy Gateway generates from examples/envoy-gateway, with its configuration: warnings only, for what Envoy Gateway cannot set', () => {
    const envoy = withClusterPorts(envoyGatewayConfig({}), (name) => (name.startsWith('securitypolicy/') ? 9192 : undefined));
    const result = check(envoy, exampleConfig('envoy-gateway/gwadmin.yaml', 'jwtauth-gateway'));
    expect(result.filters).toBe(2);
    // bodyToExtAuth cannot set pack_as_bytes: the JSON rule's body arrives as a string, which reads
    // the same (docs/integrations.md). A warning, so validate exits 0 unless --strict.
    expect(result.findings.map((f) => `${f.severity} ${f.check}`)).toEqual(['warning pack-as-bytes']);
  });

  it('…and finds, from the file, the misdirected route the e2e test’s live Envoy redacts', () => {
    const misdirected = {
      metadata: { name: 'vmcontroller-egress', namespace: 'cloud' },
      spec: {
        targetRefs: [{ name: 'vmcontroller' }],
        extAuth: { grpc: { backendRefs: [{ name: 'jwtauth-sidecar', port: 9192 }] }, statusOnError: 503, contextExtensions: [{ name: 'direction', value: 'outbound' }] },
      },
    };
    const envoy = withClusterPorts(envoyGatewayConfig({}, misdirected), (name) => (name.startsWith('securitypolicy/') ? 9192 : undefined));
    const result = check(envoy, exampleConfig('envoy-gateway/gwadmin.yaml', 'jwtauth-gateway'));
    expect(result.findings.filter((f) => f.severity === 'error').map((f) => [f.check, f.problem])).toEqual([['direction', expect.stringMatching(/serves inbound checks only/)]]);
  });
});
