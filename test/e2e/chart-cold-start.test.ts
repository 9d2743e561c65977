/**
 * Guarantee: a pod the chart renders becomes Ready when it is the only one, on a first deploy or
 * after a full restart. The sidecar's /readyz waits until every issuer has keys; the pod's own
 * issuer used to fetch them through the JWKS Service, which lists only Ready pods, so no pod ever
 * became Ready (the cold-start deadlock). The chart now points that issuer at the pod's own admin
 * port.
 *
 * Without a Kubernetes cluster, what is simulated and why:
 *   - the pod is the sidecar process alone, run with the chart's rendered jwtauth.yaml exactly,
 *     except the Secret's mount path (/etc/jwtauth/secrets → a temporary directory holding a
 *     generated signing key and SpiceDB's preshared key) and the rendered ports and SpiceDB
 *     endpoint, which are chart values set at render time (--set), not edits;
 *   - SpiceDB is a real one (dev/spicedb.ts), since readiness also needs it;
 *   - the chart's default external issuer (auth.example.com) is left out (--set issuers=null):
 *     it is reachable in a cluster, not from this test, and has nothing to do with the deadlock;
 *   - "a Service with no Ready endpoints" is a loopback port nothing listens on: a client of
 *     such a Service gets its connection refused, which is what the old configuration met.
 * Envoy, the kubelet and the app play no part in the deadlock, so they are not run.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { freePort } from '../../dev/ports.js';
import { startSpicedb } from '../../dev/spicedb.js';
import type { SpicedbServer } from '../../dev/spicedb.js';
import { renderChart } from '../support/helm.js';
import { gatewayPod } from '../support/pod-wiring.js';
import { startSidecar } from '../support/sidecar.js';
import type { RunningSidecar } from '../support/sidecar.js';

const SCHEMA = readFileSync(new URL('../../examples/schema.zed', import.meta.url), 'utf8');

let spicedb: SpicedbServer;
const sidecars: RunningSidecar[] = [];

beforeAll(async () => {
  spicedb = await startSpicedb({ schema: SCHEMA, relationships: '' });
}, 60_000);

afterAll(async () => {
  await Promise.allSettled(sidecars.map((s) => s.stop()));
  await spicedb?.stop();
});

/** The chart's jwtauth.yaml for a pod whose sidecar listens on these ports, with the Secret's files in place. */
async function renderedConfig(edit: (config: Record<string, unknown>) => void = () => undefined): Promise<{ config: Record<string, unknown>; grpcPort: number; adminPort: number }> {
  const [grpcPort, adminPort] = [await freePort(), await freePort()];
  const { manifests } = renderChart([
    '--set', `ports.admin=${adminPort}`,
    '--set', `ports.sidecarGrpc=${grpcPort}`,
    '--set', `spicedb.endpoint=${spicedb.endpoint}`,
    '--set', 'spicedb.caFile=',
    '--set', 'issuers=null',
  ]);
  const secrets = mkdtempSync(join(tmpdir(), 'jwtauth-secrets-'));
  writeFileSync(join(secrets, 'signing-key.pem'), generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
  writeFileSync(join(secrets, 'spicedb-key'), spicedb.presharedKey);
  const text = gatewayPod(manifests, 'helm template').sidecarConfigMap.data['jwtauth.yaml'] ?? '';
  const config = parse(text.replaceAll('/etc/jwtauth/secrets/', `${secrets}/`)) as Record<string, unknown>;
  edit(config);
  return { config, grpcPort, adminPort };
}

async function readyz(sidecar: RunningSidecar): Promise<number> {
  return (await fetch(`${sidecar.admin}/readyz`)).status;
}

describe('a pod the chart renders, started alone', () => {
  it('becomes Ready: its own issuer reads the keys from the pod itself', async () => {
    const { config, grpcPort, adminPort } = await renderedConfig();
    const sidecar = await startSidecar(config, { grpcPort, adminPort, waitReady: false });
    sidecars.push(sidecar);
    const deadline = Date.now() + 20_000;
    let status = 0;
    while (Date.now() < deadline && (status = await readyz(sidecar)) !== 200) await new Promise((resolve) => setTimeout(resolve, 200));
    expect(status).toBe(200);
  }, 40_000);

  it('…where the same pod, its issuer reading through a Service with no Ready pod behind it, never does (the deadlock the chart avoids)', async () => {
    const nobody = await freePort();
    const { config, grpcPort, adminPort } = await renderedConfig((c) => {
      const own = (c.issuers as { jwks: { url: string } }[])[0];
      if (own === undefined) throw new Error('the rendered configuration has no issuer');
      own.jwks.url = `http://127.0.0.1:${nobody}/.well-known/jwks.json`;
    });
    const sidecar = await startSidecar(config, { grpcPort, adminPort, waitReady: false });
    sidecars.push(sidecar);
    // Longer than the first fetch and two quick retries (250 ms, 500 ms): still not Ready.
    const until = Date.now() + 4000;
    const seen = new Set<number>();
    while (Date.now() < until) {
      seen.add(await readyz(sidecar));
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    expect([...seen]).toEqual([503]);
  }, 40_000);
});
