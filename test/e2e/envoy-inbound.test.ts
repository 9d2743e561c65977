/**
 * Through a real Envoy running envoy/envoy.yaml: the ingress listener asks the sidecar, which
 * verifies the caller's JWT and checks SpiceDB (a real server) before the app sees the call.
 * Covers the foundation (allow reaches the app with the header the sidecar set, 403 / grpc-status 7,
 * fail closed with 503 when the sidecar is down) and the inbound path.
 */
import { status } from '@grpc/grpc-js';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeSubjectId } from '../../src/core/subject-id.js';
import { hs256WithPublicKey, makeSigningKey, nowSeconds, signToken, unsignedToken } from '../../dev/jwt-fixtures.js';
import { grpcCall, MESH_ISSUER, startPod } from '../support/pod.js';
import type { Pod } from '../support/pod.js';

const TELEPORT_USER = 'cloud-teleport-aleksander.rykalin';
let pod: Pod;

beforeAll(async () => {
  pod = await startPod({
    relationships: [
      'cloud:cl0#admin@user:alice',
      `cloud:cl0#saga_creator@user:${encodeSubjectId(TELEPORT_USER)}`,
      'cloud:cl0#member@user:bob',
    ].join('\n'),
  });
}, 90_000);

afterAll(async () => {
  await pod?.stop();
});

function createNamespace(token: string | undefined, headers: Record<string, string> = {}, cloud = 'cl0'): Promise<Response> {
  return fetch(`${pod.ingress}/v1/clouds/${cloud}/namespaces`, {
    method: 'POST',
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), 'content-type': 'application/json', ...headers },
    body: '{"name":"ns1"}',
  });
}

function lastAppRequest() {
  return pod.app.received.at(-1);
}

describe('inbound through Envoy', () => {
  it('lets an allowed request reach the app with the verified identity headers the sidecar set', async () => {
    const before = pod.app.received.length;
    const response = await createNamespace(await pod.userToken('alice'), {
      // A client trying to pass itself off as someone else: these must be overwritten or removed.
      'x-jwtauth-subject': 'admin',
      'x-jwtauth-subject-type': 'service',
      'x-jwtauth-actor': 'root',
    });
    expect(response.status).toBe(200);
    expect(pod.app.received.length).toBe(before + 1);
    const seen = lastAppRequest()?.headers ?? {};
    expect(seen['x-jwtauth-subject']).toBe('alice');
    expect(seen['x-jwtauth-subject-type']).toBe('user');
    expect(seen['x-jwtauth-issuer']).toBe('mesh');
    expect(seen['x-jwtauth-actor']).toBeUndefined();
  });

  it('lets a Teleport user whose id has a dot create a namespace (subject-id escaping)', async () => {
    const response = await createNamespace(await pod.userToken(TELEPORT_USER));
    expect(response.status).toBe(200);
    expect(lastAppRequest()?.headers['x-jwtauth-subject']).toBe(TELEPORT_USER);
  });

  it('denies with 403 and a reason when the relation is missing, and the app never sees the call', async () => {
    const before = pod.app.received.length;
    const response = await createNamespace(await pod.userToken('bob'));
    expect(response.status).toBe(403);
    expect(response.headers.get('x-jwtauth-reason')).toBe('permission_denied');
    expect(await response.text()).toBe('permission_denied: permission denied');
    expect(pod.app.received.length).toBe(before);
  });

  it('allows a public route without a token', async () => {
    const response = await fetch(`${pod.ingress}/v1/status`);
    expect(response.status).toBe(200);
  });

  it('denies a request that matches no rule', async () => {
    const response = await fetch(`${pod.ingress}/v1/secrets`, { headers: { authorization: `Bearer ${await pod.userToken('alice')}` } });
    expect(response.status).toBe(403);
    expect(response.headers.get('x-jwtauth-reason')).toBe('no_matching_rule');
  });

  describe('gRPC', () => {
    it('passes an allowed call to the app with the verified subject', async () => {
      const outcome = await grpcCall(`127.0.0.1:${pod.envoy.ports.ingress}`, '/demo.Echo/Call', {
        authorization: `Bearer ${await pod.userToken('bob')}`,
        'x-cloud-id': 'cl0',
      });
      expect(outcome.code).toBe(status.OK);
      expect(outcome.trailers['x-seen-subject']).toBe('bob');
    });

    it('answers PERMISSION_DENIED (7) for a missing relation and UNAUTHENTICATED (16) without a token', async () => {
      const denied = await grpcCall(`127.0.0.1:${pod.envoy.ports.ingress}`, '/demo.Echo/Call', {
        authorization: `Bearer ${await pod.userToken('carol')}`,
        'x-cloud-id': 'cl0',
      });
      expect(denied.code).toBe(status.PERMISSION_DENIED);
      expect(denied.details).toContain('permission_denied');
      const anonymous = await grpcCall(`127.0.0.1:${pod.envoy.ports.ingress}`, '/demo.Echo/Call', { 'x-cloud-id': 'cl0' });
      expect(anonymous.code).toBe(status.UNAUTHENTICATED);
    });
  });

  describe('unauthenticated callers get 401 with WWW-Authenticate and a specific reason', () => {
    const cases: [string, () => Promise<string | undefined>, string][] = [
      ['no token', async () => undefined, 'missing_token'],
      [
        'a bad signature',
        async () => {
          const token = await pod.userToken('alice');
          const [header, payload] = token.split('.');
          const other = await pod.userToken('mallory');
          return `${header}.${payload}.${other.split('.')[2]}`;
        },
        'bad_signature',
      ],
      ['an expired token', async () => pod.userToken('alice', { iat: nowSeconds() - 900, exp: nowSeconds() - 600 }), 'token_expired'],
      ['a token for another audience', async () => pod.userToken('alice', { aud: 'billing' }), 'wrong_audience'],
      ['alg none', async () => unsignedToken({ alg: 'none', typ: 'JWT' }, { iss: MESH_ISSUER, aud: 'gwadmin', sub: 'alice', exp: nowSeconds() + 300 }), 'disallowed_algorithm'],
      [
        'HS256 signed with the issuer’s public key',
        async () => hs256WithPublicKey(pod.mesh, { iss: MESH_ISSUER, aud: 'gwadmin', sub: 'alice', iat: nowSeconds(), exp: nowSeconds() + 300 }),
        'disallowed_algorithm',
      ],
      [
        'a token signed by a key the issuer never published',
        async () => {
          const stranger = await makeSigningKey('ES256', 'mesh-1');
          return signToken(stranger, { iss: MESH_ISSUER, aud: 'gwadmin', sub: 'alice', iat: nowSeconds(), exp: nowSeconds() + 300 });
        },
        'bad_signature',
      ],
    ];
    it.each(cases)('%s', async (_name, makeToken, reason) => {
      const before = pod.app.received.length;
      const response = await createNamespace(await makeToken());
      expect(response.status).toBe(401);
      expect(response.headers.get('x-jwtauth-reason')).toBe(reason);
      expect(response.headers.get('www-authenticate')).toMatch(/^Bearer realm="jwtauth"/);
      expect(pod.app.received.length).toBe(before);
    });

    it('never echoes the token or internal error text in the body', async () => {
      const token = await new SignJWT({ sub: 'alice' }).setProtectedHeader({ alg: 'ES256', kid: 'nope' }).sign((await makeSigningKey()).privateKey);
      const response = await createNamespace(token);
      const body = await response.text();
      expect(response.status).toBe(401);
      expect(body).not.toContain(token.slice(0, 20));
      expect(body.length).toBeLessThan(60);
    });
  });

  it('answers 503 (gRPC: UNAVAILABLE) with a reason when SpiceDB is down and nothing is cached, and never allows', async () => {
    await pod.spicedb.stop();
    try {
      const before = pod.app.received.length;
      // dave has never been checked, so no cached decision can answer.
      const response = await createNamespace(await pod.userToken('dave'));
      expect(response.status).toBe(503);
      expect(response.headers.get('x-jwtauth-reason')).toMatch(/^permission_backend_(unavailable|timeout)$/);
      const grpcOutcome = await grpcCall(`127.0.0.1:${pod.envoy.ports.ingress}`, '/demo.Echo/Call', {
        authorization: `Bearer ${await pod.userToken('erin')}`,
        'x-cloud-id': 'cl0',
      });
      expect(grpcOutcome.code).toBe(status.UNAVAILABLE);
      expect(pod.app.received.length).toBe(before);
    } finally {
      await pod.spicedb.restart();
    }
  });

  it('fails closed: with the sidecar down, callers get 503 and the app sees nothing', async () => {
    const before = pod.app.received.length;
    await pod.sidecar.stop();
    try {
      const response = await createNamespace(await pod.userToken('alice'));
      expect(response.status).toBe(503);
      // The 503 comes from Envoy (status_on_error), not from a sidecar decision.
      expect(response.headers.get('x-jwtauth-reason')).toBeNull();
      const grpcOutcome = await grpcCall(`127.0.0.1:${pod.envoy.ports.ingress}`, '/demo.Echo/Call', {
        authorization: `Bearer ${await pod.userToken('bob')}`,
        'x-cloud-id': 'cl0',
      });
      expect(grpcOutcome.code).toBe(status.UNAVAILABLE);
      expect(pod.app.received.length).toBe(before);
    } finally {
      await pod.sidecar.restart();
    }
  });
});
