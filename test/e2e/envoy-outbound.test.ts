/**
 * Through a real Envoy running envoy/envoy.yaml: the app calls "vmcontroller" through the egress
 * listener, and the sidecar makes sure the call leaves with a valid JWT for exactly that upstream,
 * or does not leave at all. The upstream verifies what it receives against the sidecar's own
 * JWKS endpoint, as a real vmcontroller would.
 */
import { createLocalJWKSet, jwtVerify } from 'jose';
import type { JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeSubjectId } from '../../src/core/subject-id.js';
import { nowSeconds, signToken } from '../../dev/jwt-fixtures.js';
import { httpRequest, MESH_ISSUER, MINT_ISSUER, PUBLIC_ISSUER, startPod } from '../support/pod.js';
import type { PlainResponse, Pod } from '../support/pod.js';

let pod: Pod;

beforeAll(async () => {
  pod = await startPod({
    relationships: ['cloud:cl0#saga_creator@user:alice', `cloud:cl0#saga_creator@user:${encodeSubjectId('cloud-teleport-aleksander.rykalin')}`].join('\n'),
    config: {
      outbound: {
        upstreams: [{ audience: 'vmcontroller', authorities: ['vmcontroller'] }],
        onBehalfOf: {
          allowedCallers: ['gwadmin'],
          checks: [{ resource: 'cloud:{header.x-cloud-id}', permission: 'create_saga', subject: 'user:{subject}' }],
        },
      },
    },
  });
}, 90_000);

afterAll(async () => {
  await pod?.stop();
});

/** The app's outbound call: to vmcontroller through the egress listener. */
function callVmcontroller(headers: Record<string, string> = {}, authority = 'vmcontroller'): Promise<PlainResponse> {
  return httpRequest(`${pod.egress}/vmcontroller.v1.VMService/CreateNamespace`, { method: 'POST', headers: { host: authority, ...headers }, body: '{}' });
}

/** What vmcontroller would do: verify the bearer token against the sidecar's published keys. */
async function verifyAtUpstream(): Promise<{ payload: JWTPayload; typ: string | undefined }> {
  const received = pod.vmcontroller.received.at(-1);
  const authorization = String(received?.headers.authorization ?? '');
  expect(authorization).toMatch(/^Bearer /);
  const keys = (await (await fetch(`${pod.sidecar.admin}/.well-known/jwks.json`)).json()) as { keys: [] };
  const { payload, protectedHeader } = await jwtVerify(authorization.slice(7), createLocalJWKSet(keys), {
    issuer: MINT_ISSUER,
    audience: 'vmcontroller',
    algorithms: ['ES256'],
  });
  return { payload, typ: protectedHeader.typ };
}

describe('outbound through Envoy', () => {
  it('attaches a service token for exactly this upstream to a call that has none (the saga case)', async () => {
    const response = await callVmcontroller();
    expect(response.status).toBe(200);
    const { payload, typ } = await verifyAtUpstream();
    expect(typ).toBe('at+jwt');
    expect(payload.sub).toBe('gwadmin');
    expect(payload.aud).toBe('vmcontroller');
    expect(payload.client_id).toBe('gwadmin');
    expect(typeof payload.jti).toBe('string');
    expect((payload.exp ?? 0) - (payload.iat ?? 0)).toBeLessThanOrEqual(300);
  });

  it('exchanges an external user token for an internal one for this upstream', async () => {
    const external = await signToken(pod.publicAuth, { iss: PUBLIC_ISSUER, aud: 'public-api', sub: 'alice', iat: nowSeconds(), exp: nowSeconds() + 300 });
    const response = await callVmcontroller({ authorization: `Bearer ${external}` });
    expect(response.status).toBe(200);
    const { payload } = await verifyAtUpstream();
    expect(payload.sub).toBe('alice');
    expect(payload.aud).toBe('vmcontroller');
    expect(String(pod.vmcontroller.received.at(-1)?.headers.authorization)).not.toContain(external);
  });

  it('passes an internal token for this upstream unchanged', async () => {
    const internal = await signToken(pod.mesh, { iss: MESH_ISSUER, aud: 'vmcontroller', sub: 'billing', client_id: 'billing', iat: nowSeconds(), exp: nowSeconds() + 300 });
    const response = await callVmcontroller({ authorization: `Bearer ${internal}` });
    expect(response.status).toBe(200);
    expect(pod.vmcontroller.received.at(-1)?.headers.authorization).toBe(`Bearer ${internal}`);
  });

  it('acts on behalf of a user only where SpiceDB allows it, and never forwards the header', async () => {
    const allowed = await callVmcontroller({ 'x-jwtauth-on-behalf-of': 'cloud-teleport-aleksander.rykalin', 'x-cloud-id': 'cl0' });
    expect(allowed.status).toBe(200);
    const { payload } = await verifyAtUpstream();
    expect(payload.sub).toBe('cloud-teleport-aleksander.rykalin');
    expect(payload.act).toEqual({ sub: 'gwadmin' });
    expect(pod.vmcontroller.received.at(-1)?.headers['x-jwtauth-on-behalf-of']).toBeUndefined();

    const before = pod.vmcontroller.received.length;
    const refused = await callVmcontroller({ 'x-jwtauth-on-behalf-of': 'mallory', 'x-cloud-id': 'cl0' });
    expect(refused.status).toBe(403);
    expect(refused.headers['x-jwtauth-reason']).toBe('on_behalf_of_not_permitted');
    expect(pod.vmcontroller.received.length).toBe(before);
  });

  describe('never lets a call out with a bad token, and never swaps it for a service token', () => {
    const cases: [string, () => Promise<Record<string, string>>, number, string][] = [
      [
        'an expired user token',
        async () => ({
          authorization: `Bearer ${await signToken(pod.publicAuth, { iss: PUBLIC_ISSUER, aud: 'public-api', sub: 'alice', iat: nowSeconds() - 900, exp: nowSeconds() - 600 })}`,
        }),
        401,
        'token_expired',
      ],
      [
        'an internal token minted for another upstream',
        async () => ({
          authorization: `Bearer ${await signToken(pod.mesh, { iss: MESH_ISSUER, aud: 'billing', sub: 'x', client_id: 'x', iat: nowSeconds(), exp: nowSeconds() + 300 })}`,
        }),
        401,
        'wrong_audience',
      ],
      ['a token that is not a JWT', async () => ({ authorization: 'Bearer not-a-jwt' }), 401, 'malformed_token'],
      ['a Basic credential', async () => ({ authorization: 'Basic dXNlcjpwYXNz' }), 401, 'malformed_authorization'],
    ];
    it.each(cases)('%s', async (_name, headers, status, reason) => {
      const before = pod.vmcontroller.received.length;
      const response = await callVmcontroller(await headers());
      expect(response.status).toBe(status);
      expect(response.headers['x-jwtauth-reason']).toBe(reason);
      expect(pod.vmcontroller.received.length).toBe(before);
    });

    it('refuses an authority that is not a configured upstream', async () => {
      const response = await callVmcontroller({}, 'attacker.example');
      expect(response.status).toBe(403);
      expect(response.headers['x-jwtauth-reason']).toBe('unknown_upstream');
    });
  });

  it('publishes its signing keys and an OpenID discovery document on the admin port', async () => {
    const discovery = (await (await fetch(`${pod.sidecar.admin}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
    expect(discovery.issuer).toBe(MINT_ISSUER);
    const keys = (await (await fetch(`${pod.sidecar.admin}/.well-known/jwks.json`)).json()) as { keys: { d?: string; kid?: string }[] };
    expect(keys.keys.length).toBeGreaterThan(0);
    expect(keys.keys.every((key) => key.d === undefined && typeof key.kid === 'string')).toBe(true);
  });
});
