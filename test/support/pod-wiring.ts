/**
 * Kubernetes manifests of a jwtauth-sidecar pod, checked the way a cluster would meet them: each
 * validates against the upstream API schemas (npm kubernetes-models and its Istio, Envoy Gateway and
 * Gateway API companions), and the pod's wiring holds together: each probe reaches a port some
 * container binds on an address the kubelet can reach, the container ports are the ones envoy.yaml
 * and the sidecar's configuration bind, configuration is mounted as directories, and the Envoy
 * configuration agrees with the sidecar's (`validate --envoy`). Used for examples/kubernetes
 * (test/unit/examples.test.ts) and every rendering of the Helm chart (test/unit/helm-chart.test.ts).
 *
 * The upstream OpenAPI does not forbid unknown fields, so a misspelt key passes schema validation;
 * the wiring checks read the keys the pod depends on and fail when one is missing.
 */
import { readFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { parseConfigText } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { analyseEnvoyConfig } from '../../src/envoy-config/analyse.js';
import { collectEnvoyConfig } from '../../src/envoy-config/collect.js';
import { sidecarExpectations } from '../../src/envoy-config/sidecar-expectations.js';

export type Manifest = Record<string, unknown> & { apiVersion: string; kind: string; metadata?: { name?: string } };

export function manifestsOf(text: string): Manifest[] {
  return parseAllDocuments(text)
    .map((document) => document.toJS() as unknown)
    .filter((value): value is Manifest => typeof value === 'object' && value !== null && 'apiVersion' in value && 'kind' in value);
}

export const manifestsIn = (file: string): Manifest[] => manifestsOf(readFileSync(file, 'utf8'));

/** The kubernetes-models module holding `apiVersion`'s `kind`, by API group. */
function modelModule(apiVersion: string, kind: string): string {
  const group = apiVersion.includes('/') ? apiVersion.slice(0, apiVersion.indexOf('/')) : '';
  if (group.endsWith('.istio.io')) return `@kubernetes-models/istio/${apiVersion}/${kind}`;
  if (group === 'gateway.envoyproxy.io') return `@kubernetes-models/envoy-gateway/${apiVersion}/${kind}`;
  if (group.startsWith('gateway.networking.')) return `@kubernetes-models/gateway-api/${apiVersion}/${kind}`;
  return `kubernetes-models/${apiVersion}/${kind}`;
}

export async function validateManifest(manifest: Manifest): Promise<void> {
  const module = (await import(modelModule(manifest.apiVersion, manifest.kind))) as Record<string, new (data: unknown) => { validate(): void }>;
  const Model = module[manifest.kind];
  if (Model === undefined) throw new Error(`no schema for ${manifest.apiVersion} ${manifest.kind}`);
  new Model(manifest).validate();
}

interface Probe {
  readonly httpGet?: { readonly path: string; readonly port: number | string };
  readonly tcpSocket?: { readonly port: number | string };
  readonly grpc?: { readonly port: number };
  readonly exec?: unknown;
}
interface Container {
  readonly name: string;
  readonly args?: readonly string[];
  readonly env?: readonly { readonly name: string; readonly value: string }[];
  readonly ports?: readonly { readonly name?: string; readonly containerPort: number }[];
  readonly readinessProbe?: Probe;
  readonly livenessProbe?: Probe;
  readonly volumeMounts?: readonly { readonly name: string; readonly mountPath: string; readonly subPath?: string }[];
}
interface PodSpec {
  readonly containers: readonly Container[];
  readonly volumes: readonly { readonly name: string; readonly configMap?: { readonly name: string }; readonly secret?: { readonly secretName: string } }[];
}
interface SocketAddress {
  readonly address: string;
  readonly port_value: number;
}
interface EnvoyYaml {
  readonly admin: { readonly address: { readonly socket_address: SocketAddress } };
  readonly static_resources: {
    readonly listeners: readonly { readonly name: string; readonly address: { readonly socket_address: SocketAddress } }[];
    readonly clusters: readonly { readonly name: string; readonly load_assignment: { readonly endpoints: readonly { readonly lb_endpoints: readonly { readonly endpoint: { readonly address: { readonly socket_address: SocketAddress } } }[] }[] } }[];
  };
}

type Deployment = Manifest & { spec: { template: { metadata: { labels: Record<string, string>; annotations: Record<string, string> }; spec: PodSpec } } };
type ConfigMap = Manifest & { data: Record<string, string> };

/** The pod of a set of manifests: its Deployment, containers, both configurations and the ConfigMaps they came from. */
export interface GatewayPod {
  readonly manifests: readonly Manifest[];
  readonly deployment: Deployment;
  readonly podSpec: PodSpec;
  readonly container: (name: string) => Container;
  readonly byKind: (kind: string, name?: string) => Manifest;
  /** The ConfigMap holding jwtauth.yaml, and the one holding envoy.yaml. */
  readonly sidecarConfigMap: ConfigMap;
  readonly envoyConfigMap: ConfigMap;
  readonly config: Config;
  readonly envoy: EnvoyYaml;
}

export function gatewayPod(manifests: readonly Manifest[], label: string): GatewayPod {
  const byKind = (kind: string, name?: string): Manifest => {
    const found = manifests.find((m) => m.kind === kind && (name === undefined || m.metadata?.name === name));
    if (!found) throw new Error(`${label} has no ${kind} ${name ?? ''}`);
    return found;
  };
  const deployment = byKind('Deployment') as Deployment;
  const podSpec = deployment.spec.template.spec;
  const container = (name: string): Container => {
    const found = podSpec.containers.find((c) => c.name === name);
    if (!found) throw new Error(`${label}: no container ${name}`);
    return found;
  };
  const holding = (key: string): ConfigMap => {
    const found = manifests.find((m): m is ConfigMap => m.kind === 'ConfigMap' && typeof (m as ConfigMap).data?.[key] === 'string');
    if (!found) throw new Error(`${label} has no ConfigMap with ${key}`);
    return found;
  };
  const sidecarConfigMap = holding('jwtauth.yaml');
  const envoyConfigMap = holding('envoy.yaml');
  return {
    manifests,
    deployment,
    podSpec,
    container,
    byKind,
    sidecarConfigMap,
    envoyConfigMap,
    config: parseConfigText(sidecarConfigMap.data['jwtauth.yaml'] ?? '', `${label} jwtauth.yaml`, '/etc/jwtauth/config').config,
    envoy: parse(envoyConfigMap.data['envoy.yaml'] ?? '', { merge: true }) as EnvoyYaml,
  };
}

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost', '[::1]']);

function hostPort(address: string): { host: string; port: number } {
  const at = address.lastIndexOf(':');
  return { host: address.slice(0, at), port: Number(address.slice(at + 1)) };
}

/** Every port a container of this pod listens on beyond loopback, with what binds it. */
function podReachablePorts(pod: GatewayPod): Map<number, string> {
  const ports = new Map<number, string>();
  for (const listener of pod.envoy.static_resources.listeners) {
    const { address, port_value: port } = listener.address.socket_address;
    if (!LOOPBACK.has(address)) ports.set(port, `envoy listener ${listener.name}`);
  }
  const addresses: [string, string][] = [
    ['adminAddress', pod.config.server.adminAddress],
    ['grpcAddress', pod.config.server.grpcAddress],
    ...(pod.config.server.listeners ?? []).map((listener, i): [string, string] => [`listeners[${i}]`, listener.address]),
  ];
  for (const [key, address] of addresses) {
    const { host, port } = hostPort(address);
    if (!LOOPBACK.has(host)) ports.set(port, `jwtauth-sidecar server.${key}`);
  }
  return ports;
}

function clusterAddress(pod: GatewayPod, name: string): SocketAddress {
  const address = pod.envoy.static_resources.clusters.find((c) => c.name === name)?.load_assignment.endpoints[0]?.lb_endpoints[0]?.endpoint.address.socket_address;
  if (!address) throw new Error(`envoy.yaml has no cluster ${name}`);
  return address;
}

/** Registers the wiring tests for the pod `load` returns (called inside a describe). */
export function podWiringTests(load: () => GatewayPod): void {
  it('every probe targets a port a container binds on an address the kubelet can reach', () => {
    const pod = load();
    const reachable = podReachablePorts(pod);
    const probes = pod.podSpec.containers.flatMap((c) => [c.readinessProbe, c.livenessProbe].filter((p): p is Probe => p !== undefined).map((probe) => ({ container: c, probe })));
    expect(probes.length).toBeGreaterThanOrEqual(4);
    for (const { container: owner, probe } of probes) {
      if (probe.exec !== undefined) continue;
      const port = probe.httpGet?.port ?? probe.tcpSocket?.port ?? probe.grpc?.port;
      // A named port resolves within the probing container only (kubelet semantics).
      const number = typeof port === 'string' ? owner.ports?.find((p) => p.name === port)?.containerPort : port;
      expect(number, `${owner.name}: probe port ${String(port)} is not one of its named ports`).toBeTypeOf('number');
      expect(reachable.get(number ?? -1), `${owner.name}: nothing binds port ${String(number)} beyond loopback`).toBeDefined();
      expect(pod.podSpec.containers.some((c) => c.ports?.some((p) => p.containerPort === number)), `port ${String(number)} is declared by no container`).toBe(true);
    }
  });

  it('the container ports are the ports envoy.yaml and the sidecar configuration bind, and no more', () => {
    const pod = load();
    const declared = pod.podSpec.containers.flatMap((c) => (c.ports ?? []).map((p) => p.containerPort));
    expect(new Set(declared)).toEqual(new Set(podReachablePorts(pod).keys()));
    const admin = hostPort(pod.config.server.adminAddress).port;
    expect(pod.container('jwtauth-sidecar').ports?.find((p) => p.name === 'admin')?.containerPort).toBe(admin);
    expect(Number(pod.deployment.spec.template.metadata.annotations['prometheus.io/port'])).toBe(admin);
  });

  it('Envoy talks to the sidecar and the app where they listen, and its admin port and egress stay on loopback', () => {
    const pod = load();
    const sidecar = clusterAddress(pod, 'jwtauth_sidecar');
    expect(`${sidecar.address}:${sidecar.port_value}`).toBe(pod.config.server.grpcAddress);
    expect(LOOPBACK.has(pod.envoy.admin.address.socket_address.address)).toBe(true);
    expect(LOOPBACK.has(clusterAddress(pod, 'local_app').address)).toBe(true);
    const egress = pod.envoy.static_resources.listeners.find((l) => l.name === 'egress')?.address.socket_address;
    if (egress !== undefined) expect(LOOPBACK.has(egress.address)).toBe(true);
  });

  it('both configurations are ConfigMaps mounted as directories (so updates arrive), each holding the file its container reads', () => {
    const pod = load();
    for (const [name, flag, configMap] of [['jwtauth-sidecar', '--config', pod.sidecarConfigMap], ['envoy', '-c', pod.envoyConfigMap]] as const) {
      const container = pod.container(name);
      const path = container.args?.[(container.args?.indexOf(flag) ?? -2) + 1] ?? '';
      const mount = container.volumeMounts?.find((m) => path.startsWith(`${m.mountPath}/`));
      expect(mount, `${name}: no volume holds ${path}`).toBeDefined();
      expect(mount?.subPath).toBeUndefined();
      expect(pod.podSpec.volumes.find((v) => v.name === mount?.name)?.configMap?.name).toBe(configMap.metadata?.name);
      expect(Object.keys(configMap.data)).toContain(path.slice((mount?.mountPath.length ?? 0) + 1));
    }
    // Every file the sidecar's configuration names under the secrets mount comes from the Secret volume.
    const secretsMount = pod.container('jwtauth-sidecar').volumeMounts?.find((m) => m.mountPath === '/etc/jwtauth/secrets');
    expect(pod.podSpec.volumes.find((v) => v.name === secretsMount?.name)?.secret?.secretName).toBeTruthy();
    for (const file of pod.config.body.protoFiles ?? []) expect(Object.keys(pod.sidecarConfigMap.data)).toContain(file);
  });

  it('its envoy.yaml and jwtauth.yaml agree: validate --envoy finds nothing', () => {
    const pod = load();
    const analysis = analyseEnvoyConfig(collectEnvoyConfig(pod.envoy), sidecarExpectations(pod.config));
    expect(analysis.filters).toBeGreaterThan(0);
    expect(analysis.findings.map((f) => `${f.severity} [${f.check}] ${f.at}: ${f.problem}`)).toEqual([]);
  });

  it('the pod’s own issuer reads its keys from the pod itself, and the JWKS Service it advertises selects this pod even before it is Ready', () => {
    const pod = load();
    const source = pod.config.tokens?.source;
    if (source?.kind !== 'mint') return;
    const own = pod.config.issuers.find((issuer) => issuer.issuer === source.issuer);
    expect(own, 'no issuer for the tokens this pod mints').toBeDefined();
    // Not through a Service: one that lists only Ready pods would deadlock a cold start
    // (/readyz waits for keys; test/e2e/chart-cold-start.test.ts).
    const ownUrl = new URL(own?.jwks !== undefined && 'url' in own.jwks ? own.jwks.url : '');
    expect(LOOPBACK.has(ownUrl.hostname)).toBe(true);
    expect(Number(ownUrl.port)).toBe(hostPort(pod.config.server.adminAddress).port);
    const advertised = new URL(source.jwksUri ?? '');
    const service = pod.byKind('Service', advertised.hostname.split('.')[0]) as Manifest & { spec: { selector: Record<string, string>; publishNotReadyAddresses?: boolean; ports: { port: number; targetPort: string | number }[] } };
    for (const [label, value] of Object.entries(service.spec.selector)) expect(pod.deployment.spec.template.metadata.labels[label]).toBe(value);
    expect(service.spec.ports.find((p) => p.port === Number(advertised.port || 80))?.targetPort).toBe('admin');
    expect(service.spec.publishNotReadyAddresses).toBe(true);
  });
}
