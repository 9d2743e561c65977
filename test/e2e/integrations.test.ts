/**
 * The sidecar behind the ext_authz filters Istio and Envoy Gateway generate, in a real Envoy. Those
 * control planes send no context_extensions (Istio cannot: istio#59390; Envoy Gateway only since
 * v1.7), so the direction comes from the listener each filter points at (`server.listeners`).
 *
 * Each Envoy configuration is translated from the repository's examples the way the control plane
 * translates them, field by field (test/support/control-planes.ts), so a change to an example
 * changes what is tested. Everything Istio or Envoy Gateway add that is not about ext_authz is left
 * out. The pod is test/support/pod.ts: a real SpiceDB, the built sidecar as its own process and the
 * app; its own Envoy (envoy/envoy.yaml) runs beside these two and is not used here.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { status } from '@grpc/grpc-js';
import { decodeJwt } from 'jose';
import protobuf from 'protobufjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { freePort } from '../../dev/ports.js';
import { frameMessage } from '../../src/body/grpc-frame.js';
import { runCli } from '../../src/commands/dispatch.js';
import { encodeSubjectId } from '../../src/core/subject-id.js';
import type { CheckRequest } from '../../src/generated/envoy/service/auth/v3/CheckRequest.js';
import { rawGrpcCall } from '../support/body-grpc.js';
import { httpCheck, sidecarClient } from '../support/check-client.js';
import { envoyGatewayConfig, istioEnvoyConfig } from '../support/control-planes.js';
import { startEnvoy } from '../../dev/envoy.js';
import type { RunningEnvoy } from '../../dev/envoy.js';
import { grpcCall, httpRequest, startPod } from '../support/pod.js';
import type { PlainResponse, Pod } from '../support/pod.js';

const EXAMPLES = new URL('../../examples/', import.meta.url);
const DEMO_PROTO = fileURLToPath(new URL('demo/vmcontroller.proto', EXAMPLES));
const CREATE_NAMESPACE = '/demo.vmcontroller.v1.VmController/CreateNamespace';

// ----------------------------------------------------------------------------------------- tests

const TELEPORT_USER = 'cloud-teleport-aleksander.rykalin';
const proto = new protobuf.Root().loadSync(DEMO_PROTO, { keepCase: true });
const CreateNamespaceRequest = proto.lookupType('demo.vmcontroller.v1.CreateNamespaceRequest');
const createNamespaceMessage = (cloudId: string, namespaceId: string): Buffer =>
  frameMessage(CreateNamespaceRequest.encode(CreateNamespaceRequest.fromObject({ cloud_id: cloudId, namespace_id: namespaceId })).finish());

let pod: Pod;
let inboundListenerPort: number;
let outboundListenerPort: number;
let istio: RunningEnvoy;
let gateway: RunningEnvoy;

function writeEnvoyConfig(text: string): string {
  const file = join(mkdtempSync(join(tmpdir(), 'jwtauth-integration-')), 'envoy.yaml');
  writeFileSync(file, text);
  return file;
}

beforeAll(async () => {
  [inboundListenerPort, outboundListenerPort] = [await freePort(), await freePort()];
  pod = await startPod({
    relationships: ['cloud:cl0#admin@user:alice', 'cloud:cl0#member@user:bob', `cloud:cl0#admin@user:${encodeSubjectId(TELEPORT_USER)}`, 'cloud:cl1#admin@user:carol'].join('\n'),
    config: {
      server: {
        listeners: [
          { address: `127.0.0.1:${inboundListenerPort}`, direction: 'inbound' },
          { address: `127.0.0.1:${outboundListenerPort}`, direction: 'outbound' },
        ],
      },
      body: { protoFiles: [DEMO_PROTO] },
      inbound: {
        rules: [
          {
            name: 'create-namespace',
            match: { http: { methods: ['POST'], path: '/v1/clouds/{cloud}/namespaces' } },
            checks: [{ resource: 'cloud:{path.cloud}', permission: 'create_namespace' }],
          },
          {
            name: 'create-namespace-json',
            match: { http: { methods: ['POST'], path: '/v1/namespaces' } },
            checks: [{ resource: 'cloud:{body.cloud_id}', permission: 'create_namespace' }],
          },
          {
            name: 'create-namespace-grpc',
            match: { grpc: { service: 'demo.vmcontroller.v1.VmController', method: 'CreateNamespace' } },
            checks: [{ resource: 'cloud:{body.cloud_id}', permission: 'create_namespace' }],
          },
          { name: 'echo-grpc', match: { grpc: { service: 'demo.Echo', method: 'Call' } }, checks: [{ resource: 'cloud:{header.x-cloud-id}', permission: 'view' }] },
        ],
      },
    },
  });
  const upstreams = { app: pod.app.port, vmcontroller: pod.vmcontroller.port, sidecar: inboundListenerPort };
  [istio, gateway] = await Promise.all([
    startEnvoy(upstreams, writeEnvoyConfig(istioEnvoyConfig(outboundListenerPort))),
    startEnvoy(
      upstreams,
      writeEnvoyConfig(
        envoyGatewayConfig(
          // As if gwadmin-messages also matched the gRPC call whose rule reads its message.
          { 'gwadmin-messages': [{ path: { type: 'Exact', value: CREATE_NAMESPACE }, method: 'POST' }] },
          {
            metadata: { name: 'vmcontroller-egress', namespace: 'cloud' },
            spec: {
              targetRefs: [{ name: 'vmcontroller' }],
              // A route that asks the inbound listener for the outbound direction (v1.7+ contextExtensions).
              extAuth: { grpc: { backendRefs: [{ name: 'jwtauth-sidecar', port: 9192 }] }, contextExtensions: [{ name: 'direction', value: 'outbound' }, { name: 'audience', value: 'vmcontroller' }] },
            },
          },
        ),
      ),
    ),
  ]);
}, 120_000);

afterAll(async () => {
  await Promise.allSettled([istio?.stop(), gateway?.stop()]);
  await pod?.stop();
});

function createNamespace(origin: string, token: string | undefined, headers: Record<string, string> = {}): Promise<PlainResponse> {
  return httpRequest(`${origin}/v1/clouds/cl0/namespaces`, {
    method: 'POST',
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), 'content-type': 'application/json', ...headers },
    body: '{"name":"ns1"}',
  });
}

/** Runs `send` and counts the requests that reached the app meanwhile. */
async function reachingApp<T>(send: () => Promise<T>): Promise<{ outcome: T; reachedApp: number }> {
  const before = pod.app.received.length;
  const outcome = await send();
  return { outcome, reachedApp: pod.app.received.length - before };
}

it('serves health on every listener: server.grpcAddress and both directional ones', async () => {
  for (const port of [pod.sidecar.grpcPort, inboundListenerPort, outboundListenerPort]) {
    const client = sidecarClient(port);
    try {
      expect(await client.health('envoy.service.auth.v3.Authorization')).toBe('SERVING');
    } finally {
      client.close();
    }
  }
});

it('keeps context_extensions.direction where a route sets it: repeated on a directional listener it decides, contradicting the listener it is denied', async () => {
  const inbound = sidecarClient(inboundListenerPort);
  const plain = sidecarClient(pod.sidecar.grpcPort);
  try {
    const token = await pod.userToken('alice');
    const create = (extensions: Record<string, string>) => httpCheck('POST', '/v1/clouds/cl0/namespaces', { authorization: `Bearer ${token}` }, extensions);
    expect((await inbound.check(create({ direction: 'inbound' }))).status?.code).toBe(0);
    // The same outbound check that mints a token on server.grpcAddress mints nothing here.
    const toVmcontroller: CheckRequest = {
      attributes: { request: { http: { method: 'GET', path: '/v1/things', host: 'vmcontroller' } }, context_extensions: { direction: 'outbound', audience: 'vmcontroller' } },
    };
    const minted = await plain.check(toVmcontroller);
    expect(minted.ok_response?.headers?.some((header) => header.header?.key === 'authorization')).toBe(true);
    const refused = await inbound.check(toVmcontroller);
    expect(refused.ok_response).toBeFalsy();
    expect(refused.denied_response?.headers?.find((header) => header.header?.key === 'x-jwtauth-reason')?.header?.value).toBe('unknown_direction');
  } finally {
    inbound.close();
    plain.close();
  }
});

describe('Istio: the CUSTOM provider (envoyExtAuthzGrpc) on sidecar inbound, at the inbound listener', () => {
  const origin = () => `http://127.0.0.1:${istio.ports.ingress}`;

  it('lets an allowed request reach the app with the verified identity, replacing forged identity headers', async () => {
    const { outcome, reachedApp } = await reachingApp(async () =>
      createNamespace(origin(), await pod.userToken(TELEPORT_USER), { 'x-jwtauth-subject': 'admin', 'x-jwtauth-actor': 'root' }),
    );
    expect(outcome.status).toBe(200);
    expect(reachedApp).toBe(1);
    const seen = pod.app.received.at(-1)?.headers ?? {};
    expect(seen['x-jwtauth-subject']).toBe(TELEPORT_USER);
    expect(seen['x-jwtauth-subject-type']).toBe('user');
    expect(seen['x-jwtauth-issuer']).toBe('mesh');
    expect(seen['x-jwtauth-actor']).toBeUndefined();
  });

  it('denies a caller without the permission with 403', async () => {
    const { outcome, reachedApp } = await reachingApp(async () => createNamespace(origin(), await pod.userToken('bob')));
    expect(outcome.status).toBe(403);
    expect(outcome.headers['x-jwtauth-reason']).toBe('permission_denied');
    expect(reachedApp).toBe(0);
  });

  it('denies a request without a token as missing_token (401), not missing_direction: the direction came from the listener', async () => {
    const { outcome, reachedApp } = await reachingApp(() => createNamespace(origin(), undefined));
    expect(outcome.status).toBe(401);
    expect(outcome.headers['x-jwtauth-reason']).toBe('missing_token');
    expect(reachedApp).toBe(0);
  });

  it('refuses two Authorization headers, which Istio’s filter sends joined in its header map', async () => {
    const [first, second] = [await pod.userToken('alice'), await pod.userToken('carol')];
    const { outcome, reachedApp } = await reachingApp(() =>
      httpRequest(`${origin()}/v1/clouds/cl0/namespaces`, { method: 'POST', headers: { authorization: [`Bearer ${first}`, `Bearer ${second}`] as unknown as string } }),
    );
    expect(outcome.status).toBe(401);
    expect(outcome.headers['x-jwtauth-reason']).toBe('duplicate_authorization');
    expect(reachedApp).toBe(0);
  });

  it('never asks for a path the AuthorizationPolicy leaves out (notPaths: /healthz)', async () => {
    const { outcome, reachedApp } = await reachingApp(() => httpRequest(`${origin()}/healthz`));
    expect(outcome.status).toBe(200);
    expect(reachedApp).toBe(1);
  });

  it('decides gRPC calls: OK with the subject, UNAUTHENTICATED without a token', async () => {
    const address = `127.0.0.1:${istio.ports.ingress}`;
    const allowed = await grpcCall(address, '/demo.Echo/Call', { authorization: `Bearer ${await pod.userToken('bob')}`, 'x-cloud-id': 'cl0' });
    expect(allowed.code).toBe(status.OK);
    expect(allowed.trailers['x-seen-subject']).toBe('bob');
    expect((await grpcCall(address, '/demo.Echo/Call', { 'x-cloud-id': 'cl0' })).code).toBe(status.UNAUTHENTICATED);
  });

  it('outbound, through the EnvoyFilter at the outbound listener: a call to vmcontroller leaves with a token for it, other calls are not checked', async () => {
    const before = pod.vmcontroller.received.length;
    const response = await httpRequest(`http://127.0.0.1:${istio.ports.egress}/v1/namespaces/ns1`, { headers: { host: 'vmcontroller' } });
    expect(response.status).toBe(200);
    expect(pod.vmcontroller.received.length).toBe(before + 1);
    const authorization = String(pod.vmcontroller.received.at(-1)?.headers.authorization ?? '');
    expect(authorization).toMatch(/^Bearer /);
    expect(decodeJwt(authorization.slice('Bearer '.length))).toMatchObject({ sub: 'gwadmin', aud: 'vmcontroller' });
    const elsewhere = await httpRequest(`http://127.0.0.1:${istio.ports.egress}/`, { headers: { host: 'billing.cloud.svc.cluster.local' } });
    expect(elsewhere).toMatchObject({ status: 200, body: 'passthrough' });
  });
});

describe('Envoy Gateway: a SecurityPolicy extAuth (grpc backendRef) on HTTPRoutes, at the inbound listener', () => {
  const origin = () => `http://127.0.0.1:${gateway.ports.ingress}`;

  it('lets an allowed request reach the app with the verified identity; a forged identity header it never forwarded is still replaced', async () => {
    const { outcome, reachedApp } = await reachingApp(async () =>
      createNamespace(origin(), await pod.userToken('alice'), { 'x-jwtauth-subject': 'admin', 'x-jwtauth-actor': 'root' }),
    );
    expect(outcome.status).toBe(200);
    expect(reachedApp).toBe(1);
    const seen = pod.app.received.at(-1)?.headers ?? {};
    expect(seen['x-jwtauth-subject']).toBe('alice');
    expect(seen['x-jwtauth-actor']).toBeUndefined();
  });

  it('denies a caller without the permission with 403, and a request without a token with 401 missing_token', async () => {
    const { outcome: forbidden } = await reachingApp(async () => createNamespace(origin(), await pod.userToken('bob')));
    expect(forbidden.status).toBe(403);
    expect(forbidden.headers['x-jwtauth-reason']).toBe('permission_denied');
    const { outcome: anonymous, reachedApp } = await reachingApp(() => createNamespace(origin(), undefined));
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers['x-jwtauth-reason']).toBe('missing_token');
    expect(reachedApp).toBe(0);
  });

  it('never asks for a route no SecurityPolicy targets', async () => {
    expect((await httpRequest(`${origin()}/healthz`)).status).toBe(200);
  });

  it('reads a JSON body from bodyToExtAuth: the cloud the message names is checked', async () => {
    const post = async (cloud: string) =>
      httpRequest(`${origin()}/v1/namespaces`, {
        method: 'POST',
        headers: { authorization: `Bearer ${await pod.userToken('alice')}`, 'content-type': 'application/json' },
        body: JSON.stringify({ cloud_id: cloud, namespace_id: 'ns1' }),
      });
    expect((await post('cl0')).status).toBe(200);
    const { outcome, reachedApp } = await reachingApp(() => post('cl1'));
    expect(outcome.status).toBe(403);
    expect(reachedApp).toBe(0);
  });

  it('reads a gRPC message only when Envoy’s UTF-8 string left it intact; otherwise denies body_missing, never decides on altered bytes', async () => {
    const call = async (message: Buffer) =>
      rawGrpcCall(origin(), CREATE_NAMESPACE, { authorization: `Bearer ${await pod.userToken('alice')}` }, message);
    // Every byte below 0x80 and no "!": the string Envoy sends is the message.
    const intact = await call(createNamespaceMessage('cl0', 'ns1'));
    expect(intact.grpcStatus).toBe(status.OK);
    // A 200-byte namespace id: its length varint (0xC8 0x01) and the frame's length are not UTF-8.
    const { outcome: altered, reachedApp } = await reachingApp(() => call(createNamespaceMessage('cl0', 'n'.repeat(200))));
    expect(altered.grpcStatus).toBe(status.INVALID_ARGUMENT);
    expect(altered.metadata['x-jwtauth-reason']).toBe('body_missing');
    expect(reachedApp).toBe(0);
  });

  it('cannot be made to mint a token: a route whose contextExtensions ask the inbound listener for outbound is denied', async () => {
    const before = pod.vmcontroller.received.length;
    const response = await httpRequest(`http://127.0.0.1:${gateway.ports.egress}/v1/namespaces`, { headers: { host: 'vmcontroller' } });
    expect(response.status).toBe(400);
    expect(response.headers['x-jwtauth-reason']).toBe('unknown_direction');
    expect(pod.vmcontroller.received.length).toBe(before);
  });
});

describe('validate --envoy-admin on these live Envoys: the check reads what the control planes generate', () => {
  /** The pod's sidecar configuration as validate reads it, with the gRPC port the pod was given. */
  function sidecarConfigFile(): string {
    const config = parse(readFileSync(pod.sidecar.configFile, 'utf8')) as { server?: Record<string, unknown> };
    config.server = { ...config.server, grpcAddress: `127.0.0.1:${pod.sidecar.grpcPort}` };
    const file = join(mkdtempSync(join(tmpdir(), 'jwtauth-validate-')), 'jwtauth.yaml');
    writeFileSync(file, stringify(config));
    return file;
  }

  async function validateAgainst(envoy: RunningEnvoy): Promise<{ code: number; out: string; err: string; findings: string[] }> {
    let out = '';
    let err = '';
    const code = await runCli(['validate', '--config', sidecarConfigFile(), '--envoy-admin', `http://127.0.0.1:${envoy.ports.admin}`], {
      out: (text) => (out += `${text}\n`),
      err: (text) => (err += `${text}\n`),
      env: { SPICEDB_KEY: pod.spicedb.presharedKey },
    });
    const findings = [...`${out}${err}`.matchAll(/^(error|warning) \[([a-z-]+)\] (.*)$/gm)].map((m) => `${m[1]} ${m[2]} @ ${m[3]}`);
    return { code, out, err, findings };
  }

  it('Istio: finds the one disagreement, the body rules that Istio’s filter sends no body to', async () => {
    const result = await validateAgainst(istio);
    // Both filters were read from /config_dump: the CUSTOM one (its cluster outbound|…||jwtauth-sidecar.local
    // reaching the inbound listener) and the EnvoyFilter's (the outbound listener, audience vmcontroller).
    expect(result.out + result.err).toMatch(/\(2 ext_authz filters, 3 routes/);
    expect(result.out).toMatch(/^note: Envoy’s admin redacts context_extensions values/m);
    // examples/istio/mesh-config.yaml leaves includeRequestBodyInCheck commented out, and this pod
    // has rules reading {body.…}: Istio would send them no body, and they would deny body_missing.
    expect(result.findings).toEqual([expect.stringMatching(/^error request-body @ listener ingress → .* → routes\[0\] \(prefix \/\)$/)]);
    expect(result.err).toMatch(/inbound rule create-namespace-json, inbound rule create-namespace-grpc read \{body\.…\}/);
    expect(result.code).toBe(1);
  });

  it('Envoy Gateway: finds the gRPC message sent without pack_as_bytes; cannot see the direction a route names, and says so', async () => {
    const result = await validateAgainst(gateway);
    expect(result.out + result.err).toMatch(/\(3 ext_authz filters, 9 routes/);
    const expected = [
      /^error pack-as-bytes @ listener ingress → .* → routes\[\d\] \(path \/demo\.vmcontroller\.v1\.VmController\/CreateNamespace, POST\)$/,
      /^warning pack-as-bytes @ listener ingress → .* → routes\[\d\] \(path \/v1\/namespaces, POST\)$/,
      /^warning allowed-headers @ listener ingress → .*securitypolicy\/cloud\/gwadmin-jwtauth-body → allowed_headers$/,
      // This test's misdirected policy sets no statusOnError.
      /^warning status-on-error @ listener egress → .*securitypolicy\/cloud\/vmcontroller-egress$/,
    ];
    expect(result.findings, result.findings.join('\n')).toHaveLength(expected.length);
    for (const pattern of expected) expect(result.findings.some((finding) => pattern.test(finding)), `${pattern}\n${result.findings.join('\n')}`).toBe(true);
    // The misdirected route's direction is there, but /config_dump shows it as [redacted]: the file
    // check finds it (test/unit/envoy-configs-in-repo.test.ts); here the output says why it cannot.
    expect(result.out).toMatch(/^note: Envoy’s admin redacts context_extensions values/m);
    expect(result.code).toBe(1);
  });

  it('says clearly when nothing answers at the admin address', async () => {
    let err = '';
    const code = await runCli(['validate', '--config', sidecarConfigFile(), '--envoy-admin', `http://127.0.0.1:${await freePort()}`], { out: () => undefined, err: (text) => (err += text), env: { SPICEDB_KEY: pod.spicedb.presharedKey } });
    expect(code).toBe(1);
    expect(err).toMatch(/cannot reach Envoy’s admin at http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\)/);
  });
});
