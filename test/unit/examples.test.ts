/**
 * Guarantee: the deployment examples deploy. Every Kubernetes manifest under examples/ validates
 * against the upstream API schemas, and the gateway pod of examples/kubernetes (rendered from the
 * Helm chart, test/unit/helm-chart.test.ts keeps it so) is wired so that it becomes Ready: probes,
 * ports, mounts, its envoy.yaml against its jwtauth.yaml (test/support/pod-wiring.ts), and that
 * configuration passes the sidecar's own start-up preflight with its mounted files in place.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfigFile } from '../../src/config/load.js';
import { preflight } from '../../src/lifecycle/preflight.js';
import { PACKAGE_ROOT } from '../../src/base/package-root.js';
import { createTestPki } from '../support/certs.js';
import { gatewayPod, manifestsIn, podWiringTests, validateManifest } from '../support/pod-wiring.js';
import { SHIPPED_NODE_ARGS } from '../../dev/node-flags.js';

const EXAMPLES = join(PACKAGE_ROOT, 'examples');

function yamlFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return yamlFiles(path);
    return /\.ya?ml$/.test(entry.name) ? [path] : [];
  });
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

const POD_FILE = join(EXAMPLES, 'kubernetes', 'gateway-pod.yaml');
const pod = gatewayPod(manifestsIn(POD_FILE), 'gateway-pod.yaml');

describe('the gateway pod is wired so that it becomes Ready', () => {
  podWiringTests(() => pod);

  it('the app sends its outbound calls to Envoy’s egress listener', () => {
    const egress = pod.envoy.static_resources.listeners.find((l) => l.name === 'egress')?.address.socket_address;
    expect(pod.container('app').env?.find((e) => e.name === 'VMCONTROLLER_ADDR')?.value).toBe(`${egress?.address}:${egress?.port_value}`);
  });

  it('the sidecar configuration passes start-up preflight with its mounted files in place, against the example schema', async () => {
    const root = mkdtempSync(join(tmpdir(), 'jwtauth-example-'));
    mkdirSync(join(root, 'config'));
    mkdirSync(join(root, 'secrets'));
    for (const [key, text] of Object.entries(pod.sidecarConfigMap.data)) {
      writeFileSync(join(root, 'config', key), key === 'jwtauth.yaml' ? text.replaceAll('/etc/jwtauth/secrets/', `${root}/secrets/`) : text);
    }
    writeFileSync(join(root, 'secrets', 'signing-key.pem'), generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
    writeFileSync(join(root, 'secrets', 'spicedb-key'), 'preshared-key\n');
    writeFileSync(join(root, 'secrets', 'spicedb-ca.pem'), readFileSync(createTestPki([]).caFile));
    const loaded = loadConfigFile(join(root, 'config', 'jwtauth.yaml'));
    const result = await preflight(loaded, { schemaFile: join(EXAMPLES, 'schema.zed') });
    expect(result.schemaOrigin).toBe(join(EXAMPLES, 'schema.zed'));
  });

  it('carries the demo’s vmcontroller.proto unchanged, so {body.cloud_id} reads the real message', () => {
    expect(pod.sidecarConfigMap.data['vmcontroller.proto']).toBe(readFileSync(join(EXAMPLES, 'demo', 'vmcontroller.proto'), 'utf8'));
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
