/**
 * Guarantee: the deployment examples deploy. Every Kubernetes manifest under examples/ validates
 * against the upstream API schemas (npm kubernetes-models and its Istio, Envoy Gateway and Gateway
 * API companions, generated from the upstream OpenAPI and CRDs), and the gateway pod's wiring
 * holds together: each probe reaches a port some container binds on an address the kubelet can
 * reach, the ports and names in the pod match envoy/envoy.yaml and the sidecar's configuration,
 * and that configuration passes the sidecar's own start-up preflight with its mounted files in place.
 *
 * The upstream OpenAPI does not forbid unknown fields, so a misspelt key passes schema validation;
 * the wiring checks below read the keys the pod depends on and fail when one is missing.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { loadConfigFile } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { preflight } from '../../src/lifecycle/preflight.js';
import { PACKAGE_ROOT } from '../../src/package-root.js';
import { createTestPki } from '../support/certs.js';
import { SHIPPED_NODE_ARGS } from '../../bench/node-flags.js';

const EXAMPLES = join(PACKAGE_ROOT, 'examples');

type Manifest = Record<string, unknown> & { apiVersion: string; kind: string; metadata?: { name?: string } };

function yamlFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return yamlFiles(path);
    return /\.ya?ml$/.test(entry.name) ? [path] : [];
  });
}

function manifestsIn(file: string): Manifest[] {
  return parseAllDocuments(readFileSync(file, 'utf8'))
    .map((document) => document.toJS() as unknown)
    .filter((value): value is Manifest => typeof value === 'object' && value !== null && 'apiVersion' in value && 'kind' in value);
}

/** The kubernetes-models module holding `apiVersion`'s `kind`, by API group. */
function modelModule(apiVersion: string, kind: string): string {
  const group = apiVersion.includes('/') ? apiVersion.slice(0, apiVersion.indexOf('/')) : '';
  if (group.endsWith('.istio.io')) return `@kubernetes-models/istio/${apiVersion}/${kind}`;
  if (group === 'gateway.envoyproxy.io') return `@kubernetes-models/envoy-gateway/${apiVersion}/${kind}`;
  if (group.startsWith('gateway.networking.')) return `@kubernetes-models/gateway-api/${apiVersion}/${kind}`;
  return `kubernetes-models/${apiVersion}/${kind}`;
}

async function validateManifest(manifest: Manifest): Promise<void> {
  const module = (await import(modelModule(manifest.apiVersion, manifest.kind))) as Record<string, new (data: unknown) => { validate(): void }>;
  const Model = module[manifest.kind];
  if (Model === undefined) throw new Error(`no schema for ${manifest.apiVersion} ${manifest.kind}`);
  new Model(manifest).validate();
}

const MANIFEST_FILES = yamlFiles(EXAMPLES).filter((file) => manifestsIn(file).length > 0);

describe('every Kubernetes manifest under examples/ validates against the API schemas', () => {
  it('finds the examples (so an empty glob cannot pass)', () => {
    expect(MANIFEST_FILES.map((file) => relative(EXAMPLES, file))).toContain(join('kubernetes', 'gateway-pod.yaml'));
  });

  it.each(MANIFEST_FILES.map((file) => [relative(EXAMPLES, file), file]))('%s', async (_name, file) => {
    for (const manifest of manifestsIn(file)) {
      await expect(validateManifest(manifest), `${manifest.kind} ${manifest.metadata?.name ?? ''}`).resolves.toBeUndefined();
    }
  });

  it('refuses a manifest that breaks the schema (the validation is real)', async () => {
    const broken = { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'x' }, spec: { template: { spec: { containers: [{ image: 'x' }] } } } };
    await expect(validateManifest(broken)).rejects.toThrow(/selector|name/);
  });
});

// ------------------------------------------------------------------ the gateway pod's wiring

interface Probe {
  readonly httpGet?: { readonly path: string; readonly port: number | string };
  readonly tcpSocket?: { readonly port: number | string };
  readonly grpc?: { readonly port: number };
  readonly exec?: unknown;
}
interface Container {
  readonly name: string;
  readonly args?: readonly string[];
  readonly ports?: readonly { readonly name?: string; readonly containerPort: number }[];
  readonly readinessProbe?: Probe;
  readonly livenessProbe?: Probe;
  readonly volumeMounts?: readonly { readonly name: string; readonly mountPath: string; readonly subPath?: string }[];
}
interface PodSpec {
  readonly containers: readonly Container[];
  readonly volumes: readonly { readonly name: string; readonly configMap?: { readonly name: string }; readonly secret?: { readonly secretName: string } }[];
}

const POD_FILE = join(EXAMPLES, 'kubernetes', 'gateway-pod.yaml');
const pod = manifestsIn(POD_FILE);
const byKind = (kind: string, name?: string): Manifest => {
  const found = pod.find((m) => m.kind === kind && (name === undefined || m.metadata?.name === name));
  if (!found) throw new Error(`gateway-pod.yaml has no ${kind} ${name ?? ''}`);
  return found;
};
const deployment = byKind('Deployment') as Manifest & { spec: { template: { metadata: { labels: Record<string, string>; annotations: Record<string, string> }; spec: PodSpec } } };
const podSpec = deployment.spec.template.spec;
const configMap = byKind('ConfigMap', 'gwadmin-jwtauth') as Manifest & { data: Record<string, string> };
const container = (name: string): Container => {
  const found = podSpec.containers.find((c) => c.name === name);
  if (!found) throw new Error(`no container ${name}`);
  return found;
};

/** envoy/envoy.yaml, the file the example loads into the gwadmin-envoy ConfigMap unchanged. */
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
const envoyYaml = parse(readFileSync(join(PACKAGE_ROOT, 'envoy', 'envoy.yaml'), 'utf8')) as EnvoyYaml;
const clusterAddress = (name: string): SocketAddress => {
  const address = envoyYaml.static_resources.clusters.find((c) => c.name === name)?.load_assignment.endpoints[0]?.lb_endpoints[0]?.endpoint.address.socket_address;
  if (!address) throw new Error(`envoy.yaml has no cluster ${name}`);
  return address;
};

function hostPort(address: string): { host: string; port: number } {
  const at = address.lastIndexOf(':');
  return { host: address.slice(0, at), port: Number(address.slice(at + 1)) };
}

/** The example's configuration, loaded from its ConfigMap the way the pod mounts it. */
function loadExampleConfig(): { config: Config; dir: string } {
  const root = mkdtempSync(join(tmpdir(), 'jwtauth-example-'));
  const configDir = join(root, 'config');
  mkdirSync(configDir);
  for (const [key, text] of Object.entries(configMap.data)) {
    writeFileSync(join(configDir, key), key === 'jwtauth.yaml' ? text.replaceAll('/etc/jwtauth/secrets/', `${root}/secrets/`) : text);
  }
  return { config: loadConfigFile(join(configDir, 'jwtauth.yaml')).config, dir: root };
}

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost', '[::1]']);

/** Every port a container of this pod listens on beyond loopback, with what binds it. */
function podReachablePorts(config: Config): Map<number, string> {
  const ports = new Map<number, string>();
  for (const listener of envoyYaml.static_resources.listeners) {
    const { address, port_value: port } = listener.address.socket_address;
    if (!LOOPBACK.has(address)) ports.set(port, `envoy listener ${listener.name}`);
  }
  for (const [key, address] of [['adminAddress', config.server.adminAddress], ['grpcAddress', config.server.grpcAddress]] as const) {
    const { host, port } = hostPort(address);
    if (!LOOPBACK.has(host)) ports.set(port, `jwtauth-sidecar server.${key}`);
  }
  return ports;
}

describe('the gateway pod is wired so that it becomes Ready', () => {
  const { config } = loadExampleConfig();

  it('every probe targets a port a container binds on an address the kubelet can reach', () => {
    const reachable = podReachablePorts(config);
    const probes = podSpec.containers.flatMap((c) => [c.readinessProbe, c.livenessProbe].filter((p): p is Probe => p !== undefined).map((probe) => ({ container: c, probe })));
    expect(probes.length).toBeGreaterThanOrEqual(4);
    for (const { container: owner, probe } of probes) {
      if (probe.exec !== undefined) continue;
      const port = probe.httpGet?.port ?? probe.tcpSocket?.port ?? probe.grpc?.port;
      // A named port resolves within the probing container only (kubelet semantics).
      const number = typeof port === 'string' ? owner.ports?.find((p) => p.name === port)?.containerPort : port;
      expect(number, `${owner.name}: probe port ${String(port)} is not one of its named ports`).toBeTypeOf('number');
      expect(reachable.get(number ?? -1), `${owner.name}: nothing binds port ${String(number)} beyond loopback`).toBeDefined();
      expect(podSpec.containers.some((c) => c.ports?.some((p) => p.containerPort === number)), `port ${String(number)} is declared by no container`).toBe(true);
    }
  });

  it('the container ports are the ports envoy.yaml and the sidecar configuration bind, and no more', () => {
    const reachable = podReachablePorts(config);
    const declared = podSpec.containers.flatMap((c) => (c.ports ?? []).map((p) => p.containerPort));
    expect(new Set(declared)).toEqual(new Set(reachable.keys()));
    expect(container('jwtauth-sidecar').ports?.find((p) => p.name === 'admin')?.containerPort).toBe(hostPort(config.server.adminAddress).port);
    expect(Number(deployment.spec.template.metadata.annotations['prometheus.io/port'])).toBe(hostPort(config.server.adminAddress).port);
  });

  it('Envoy talks to the sidecar and the app where they listen, and its admin port stays on loopback', () => {
    const sidecar = clusterAddress('jwtauth_sidecar');
    expect(`${sidecar.address}:${sidecar.port_value}`).toBe(config.server.grpcAddress);
    expect(LOOPBACK.has(envoyYaml.admin.address.socket_address.address)).toBe(true);
    const app = clusterAddress('local_app');
    expect(LOOPBACK.has(app.address)).toBe(true);
    const egress = envoyYaml.static_resources.listeners.find((l) => l.name === 'egress')?.address.socket_address;
    const appEnv = (container('app') as Container & { env?: { name: string; value: string }[] }).env ?? [];
    expect(appEnv.find((e) => e.name === 'VMCONTROLLER_ADDR')?.value).toBe(`${egress?.address}:${egress?.port_value}`);
    // The egress upstream is a Service name, never loopback inside a pod.
    expect(LOOPBACK.has(clusterAddress('vmcontroller').address)).toBe(false);
  });

  it('the sidecar reads its configuration from the ConfigMap mounted as a directory (so updates arrive)', () => {
    const sidecar = container('jwtauth-sidecar');
    const configPath = sidecar.args?.[(sidecar.args?.indexOf('--config') ?? -2) + 1] ?? '';
    const mount = sidecar.volumeMounts?.find((m) => configPath.startsWith(`${m.mountPath}/`));
    expect(mount, `no volume holds ${configPath}`).toBeDefined();
    expect(mount?.subPath).toBeUndefined();
    const volume = podSpec.volumes.find((v) => v.name === mount?.name);
    expect(volume?.configMap?.name).toBe(configMap.metadata?.name);
    expect(Object.keys(configMap.data)).toContain(configPath.slice((mount?.mountPath.length ?? 0) + 1));
    const envoyConfig = container('envoy').args?.[(container('envoy').args?.indexOf('-c') ?? -2) + 1] ?? '';
    expect(container('envoy').volumeMounts?.some((m) => envoyConfig.startsWith(`${m.mountPath}/`) && m.subPath === undefined)).toBe(true);
  });

  it('the JWKS the sidecar trusts for its own tokens is published by a Service selecting this pod', () => {
    const own = config.issuers.find((issuer) => issuer.issuer === (config.tokens?.source.kind === 'mint' ? config.tokens.source.issuer : undefined));
    expect(own, 'no issuer for the tokens this pod mints').toBeDefined();
    const url = new URL('url' in (own?.jwks ?? {}) ? (own?.jwks as { url: string }).url : '');
    const serviceName = url.hostname.split('.')[0] ?? '';
    const service = byKind('Service', serviceName) as Manifest & { spec: { selector: Record<string, string>; ports: { port: number; targetPort: string | number }[] } };
    for (const [label, value] of Object.entries(service.spec.selector)) expect(deployment.spec.template.metadata.labels[label]).toBe(value);
    const servicePort = service.spec.ports.find((p) => p.port === Number(url.port || 80));
    expect(servicePort?.targetPort).toBe('admin');
    expect(config.tokens?.source.kind === 'mint' && config.tokens.source.jwksUri).toBe(url.href);
  });

  it('the sidecar configuration passes start-up preflight with its mounted files in place, against the example schema', async () => {
    const { dir } = loadExampleConfig();
    mkdirSync(join(dir, 'secrets'));
    writeFileSync(join(dir, 'secrets', 'signing-key.pem'), generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
    writeFileSync(join(dir, 'secrets', 'spicedb-key'), 'preshared-key\n');
    writeFileSync(join(dir, 'secrets', 'spicedb-ca.pem'), readFileSync(createTestPki([]).caFile));
    const loaded = loadConfigFile(join(dir, 'config', 'jwtauth.yaml'));
    const result = await preflight(loaded, { schemaFile: join(EXAMPLES, 'schema.zed') });
    expect(result.schemaOrigin).toBe(join(EXAMPLES, 'schema.zed'));
  });

  it('carries the demo’s vmcontroller.proto unchanged, so {body.cloud_id} reads the real message', () => {
    expect(configMap.data['vmcontroller.proto']).toBe(readFileSync(join(EXAMPLES, 'demo', 'vmcontroller.proto'), 'utf8'));
  });
});

describe('the Node flags the sidecar ships with', () => {
  it('are the same in the image, in npm start and in every Node authorizer the bench measures', () => {
    const dockerfile = readFileSync(new URL('../../Dockerfile', import.meta.url), 'utf8');
    const entrypoint = JSON.parse(/^ENTRYPOINT (\[.*\])$/m.exec(dockerfile)?.[1] ?? '[]') as string[];
    const imageFlags = entrypoint.slice(1, entrypoint.findIndex((arg) => arg.endsWith('cli.js')));
    const start = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { scripts: { start: string } }).scripts.start;
    const startFlags = /node ((?:--\S+ )*)dist\/src\/cli\.js/.exec(start)?.[1]?.trim().split(' ') ?? [];
    expect(imageFlags).toEqual([...SHIPPED_NODE_ARGS]);
    expect(startFlags).toEqual([...SHIPPED_NODE_ARGS]);
  });
});
