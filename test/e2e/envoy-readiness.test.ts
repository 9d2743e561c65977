/**
 * Guarantee: envoy/envoy.yaml gives the kubelet a readiness endpoint on the pod IP while Envoy's
 * admin port stays on loopback. GET /ready on the readiness listener answers 200 while the sidecar
 * passes Envoy's gRPC health check, 503 once the sidecar drains (NOT_SERVING), and 503 once Envoy
 * itself is told to fail health checks (what the pod's preStop hook does).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../dev/processes.js';
import { startPod } from '../support/pod.js';
import type { Pod } from '../support/pod.js';

let pod: Pod;

beforeAll(async () => {
  pod = await startPod({ relationships: 'cloud:cl0#admin@user:alice', config: { server: { drainSeconds: 30 } } });
}, 90_000);

afterAll(async () => {
  await pod?.stop();
});

async function readiness(path = '/ready'): Promise<number> {
  return (await fetch(`http://127.0.0.1:${pod.envoy.ports.readiness}${path}`)).status;
}

describe('Envoy readiness for the kubelet', () => {
  it('answers 200 on /ready while the sidecar serves, and nothing else on that listener', async () => {
    await waitFor(async () => (await readiness()) === 200, 15_000, () => 'readiness never answered 200');
    expect(await readiness('/v1/clouds/cl0')).toBe(404);
  });

  it('answers 503 while Envoy is told to fail health checks (the preStop hook), 200 again after', async () => {
    const admin = `http://127.0.0.1:${pod.envoy.ports.admin}`;
    await fetch(`${admin}/healthcheck/fail`, { method: 'POST' });
    expect(await readiness()).toBe(503);
    await fetch(`${admin}/healthcheck/ok`, { method: 'POST' });
    expect(await readiness()).toBe(200);
  });

  it('answers 503 once the sidecar drains, so the pod leaves the endpoints before the sidecar exits', async () => {
    pod.sidecar.process.child.kill('SIGTERM');
    await waitFor(async () => (await readiness()) === 503, 15_000, () => 'readiness still 200 while the sidecar drains');
  });
});
