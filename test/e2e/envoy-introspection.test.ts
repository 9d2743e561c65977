/**
 * Through a real Envoy, sidecar process and SpiceDB: an opaque bearer token is introspected at a
 * real oidc-provider (mutual TLS, private CA) and its subject goes through the same rule and
 * SpiceDB check a JWT's would; an inactive token is refused with 401 before the app sees it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestPki } from '../support/certs.js';
import type { TestPki } from '../support/certs.js';
import { startOAuthServer } from '../support/oauth-server.js';
import type { OAuthServer } from '../support/oauth-server.js';
import { startPod } from '../support/pod.js';
import type { Pod } from '../support/pod.js';

let pki: TestPki;
let server: OAuthServer;
let pod: Pod;

beforeAll(async () => {
  pki = createTestPki(['gwadmin']);
  server = await startOAuthServer({ pki, clients: ['gwadmin'], audiences: ['vmcontroller'] });
  const client = pki.clients.gwadmin;
  if (!client) throw new Error('no client certificate');
  pod = await startPod({
    relationships: ['cloud:cl0#admin@user:alice', 'cloud:cl0#member@user:bob'].join('\n'),
    config: {
      issuers: [
        {
          name: 'corp',
          issuer: server.issuer,
          audience: 'gwadmin',
          kind: 'external',
          introspection: {
            endpoint: server.introspectionEndpoint,
            clientId: 'gwadmin',
            clientCertFile: client.certFile,
            clientKey: { file: client.keyFile },
            caFile: pki.caFile,
          },
        },
      ],
      inbound: {
        rules: [
          {
            name: 'create-namespace',
            match: { http: { methods: ['POST'], path: '/v1/clouds/{cloud}/namespaces' } },
            checks: [{ resource: 'cloud:{path.cloud}', permission: 'create_namespace' }],
          },
        ],
      },
    },
  });
}, 90_000);

afterAll(async () => {
  await pod?.stop();
  await server?.close();
  pki?.remove();
});

function createNamespace(token: string): Promise<Response> {
  return fetch(`${pod.ingress}/v1/clouds/cl0/namespaces`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: '{"name":"ns1"}',
  });
}

describe('opaque tokens through Envoy', () => {
  it('an active opaque token reaches the app with the introspected identity, after the SpiceDB check', async () => {
    const before = pod.app.received.length;
    const response = await createNamespace(await server.opaqueToken('alice', { scope: 'openid', audience: 'gwadmin' }));
    expect(response.status).toBe(200);
    expect(pod.app.received.length).toBe(before + 1);
    const seen = pod.app.received.at(-1)?.headers ?? {};
    expect(seen['x-jwtauth-subject']).toBe('alice');
    expect(seen['x-jwtauth-issuer']).toBe('corp');
  });

  it('an active token whose subject lacks the permission is 403: the rule applies unchanged', async () => {
    const response = await createNamespace(await server.opaqueToken('bob', { audience: 'gwadmin' }));
    expect(response.status).toBe(403);
    expect(response.headers.get('x-jwtauth-reason')).toBe('permission_denied');
  });

  it('an inactive token is 401 token_inactive with an invalid_token challenge, and the app never sees it', async () => {
    const before = pod.app.received.length;
    const response = await createNamespace('revoked-or-never-issued-opaque-token');
    expect(response.status).toBe(401);
    expect(response.headers.get('x-jwtauth-reason')).toBe('token_inactive');
    expect(response.headers.get('www-authenticate')).toContain('error="invalid_token"');
    expect(pod.app.received.length).toBe(before);
  });
});
