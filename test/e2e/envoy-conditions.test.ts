/**
 * `require` (scopes and claim conditions) through a real Envoy running envoy/envoy.yaml, the
 * built sidecar and a real SpiceDB: a token without a required scope is refused with 403 and the
 * RFC 6750 `WWW-Authenticate: Bearer error="insufficient_scope", scope="…"` challenge reaches the
 * caller; a claim condition refuses with its own reason; the app never sees a refused call, and a
 * gRPC caller gets PERMISSION_DENIED. Unit-level coverage: test/unit/rule-conditions.test.ts.
 */
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { grpcCall, startPod } from '../support/pod.js';
import type { Pod } from '../support/pod.js';

const CHALLENGE = 'Bearer realm="jwtauth", error="insufficient_scope", scope="vm.read vm.write"';
let pod: Pod;

beforeAll(async () => {
  pod = await startPod({
    relationships: 'cloud:cl0#member@user:alice',
    config: {
      inbound: {
        rules: [
          {
            name: 'vm-write',
            match: { http: { methods: ['POST'], path: '/v1/vms' } },
            require: { scopes: ['vm.read', 'vm.write'] },
            checks: [{ resource: 'cloud:cl0', permission: 'view' }],
          },
          { name: 'tenant-report', match: { http: { methods: ['GET'], path: '/v1/report' } }, require: { claims: { tenant: { equals: 'acme' } } } },
          { name: 'echo-grpc', match: { grpc: { service: 'demo.Echo', method: 'Call' } }, require: { scopes: ['echo'] } },
        ],
      },
    },
  });
}, 90_000);

afterAll(async () => {
  await pod?.stop();
});

async function createVm(claims: Record<string, unknown>): Promise<Response> {
  const token = await pod.userToken('alice', claims);
  return fetch(`${pod.ingress}/v1/vms`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
}

describe('require through Envoy', () => {
  it('refuses a token without a required scope: 403, insufficient_scope, and the challenge reaches the caller', async () => {
    const before = pod.app.received.length;
    const response = await createVm({ scope: 'openid vm.read' });
    expect(response.status).toBe(403);
    expect(response.headers.get('x-jwtauth-reason')).toBe('insufficient_scope');
    expect(response.headers.get('www-authenticate')).toBe(CHALLENGE);
    expect(await response.text()).toBe('insufficient_scope: the token lacks a scope this route requires');
    expect(pod.app.received.length).toBe(before);
  });

  it('accepts the scopes from a space-separated scope string, then checks SpiceDB', async () => {
    const response = await createVm({ scope: 'vm.read vm.write' });
    expect(response.status).toBe(200);
    expect(pod.app.received.at(-1)?.headers['x-jwtauth-subject']).toBe('alice');
  });

  it('accepts the scopes from an scp array', async () => {
    expect((await createVm({ scp: ['vm.write', 'vm.read'] })).status).toBe(200);
  });

  it('refuses a failed claim condition with claim_condition_failed and no challenge', async () => {
    const token = await pod.userToken('alice', { tenant: 'globex' });
    const response = await fetch(`${pod.ingress}/v1/report`, { headers: { authorization: `Bearer ${token}` } });
    expect(response.status).toBe(403);
    expect(response.headers.get('x-jwtauth-reason')).toBe('claim_condition_failed');
    expect(response.headers.get('www-authenticate')).toBeNull();
    const allowed = await fetch(`${pod.ingress}/v1/report`, { headers: { authorization: `Bearer ${await pod.userToken('alice', { tenant: 'acme' })}` } });
    expect(allowed.status).toBe(200);
  });

  it('answers a gRPC caller without the scope with PERMISSION_DENIED (7)', async () => {
    const address = `127.0.0.1:${pod.envoy.ports.ingress}`;
    const denied = await grpcCall(address, '/demo.Echo/Call', { authorization: `Bearer ${await pod.userToken('alice', { scope: 'other' })}` });
    expect(denied.code).toBe(status.PERMISSION_DENIED);
    expect(denied.details).toContain('insufficient_scope');
    const allowed = await grpcCall(address, '/demo.Echo/Call', { authorization: `Bearer ${await pod.userToken('alice', { scp: ['echo'] })}` });
    expect(allowed.code).toBe(status.OK);
  });
});
