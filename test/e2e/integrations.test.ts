/**
 * The sidecar behind the ext_authz filters Istio and Envoy Gateway generate, in a real Envoy. Those
 * control planes send no context_extensions (Istio cannot: istio#59390; Envoy Gateway only since
 * v1.7), so the direction comes from the listener each filter points at (`server.listeners`).
 *
 * Each Envoy configuration below is translated from the repository's examples the way the control
 * plane translates them, field by field, so a change to an example changes what is tested:
 *   - Istio (istio/istio pilot/pkg/security/authz/builder/extauthz.go, builder.go): the
 *     envoyExtAuthzGrpc provider of examples/istio/mesh-config.yaml becomes an ext_authz filter
 *     (envoy_grpc to outbound|port||host, the provider's timeout, failure_mode_allow, status_on_error,
 *     V3, no allowed_headers, no context_extensions, no encode_raw_headers) enabled only where the
 *     shadow RBAC rule of the CUSTOM AuthorizationPolicy matched (filter_enabled_metadata). The
 *     EnvoyFilter of examples/istio/gwadmin.yaml adds the outbound filter, taken as written.
 *   - Envoy Gateway (envoyproxy/gateway v1.9 internal/xds/translator/extauth.go): each SecurityPolicy
 *     of examples/envoy-gateway/gwadmin.yaml becomes a disabled ext_authz filter (headersToExtAuth as
 *     allowed_headers, ignore_case; timeout 10 s unless set; failOpen; statusOnError; bodyToExtAuth as
 *     max_request_bytes only) enabled on its target routes with an ExtAuthzPerRoute whose
 *     check_settings carry only the policy's contextExtensions.
 * Everything Istio or Envoy Gateway add that is not about ext_authz (mTLS, stats, tracing) is left
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
import { parseAllDocuments, stringify } from 'yaml';
import { freePort } from '../../dev/ports.js';
import { frameMessage } from '../../src/body/grpc-frame.js';
import { encodeSubjectId } from '../../src/core/subject-id.js';
import type { CheckRequest } from '../../src/generated/envoy/service/auth/v3/CheckRequest.js';
import { rawGrpcCall } from '../support/body-grpc.js';
import { httpCheck, sidecarClient } from '../support/check-client.js';
import { startEnvoy } from '../support/envoy.js';
import type { RunningEnvoy } from '../support/envoy.js';
import { grpcCall, httpRequest, startPod } from '../support/pod.js';
import type { PlainResponse, Pod } from '../support/pod.js';

const EXAMPLES = new URL('../../examples/', import.meta.url);
const DEMO_PROTO = fileURLToPath(new URL('demo/vmcontroller.proto', EXAMPLES));
const CREATE_NAMESPACE = '/demo.vmcontroller.v1.VmController/CreateNamespace';
const EXT_AUTHZ = 'type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz';
const EXT_AUTHZ_PER_ROUTE = 'type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute';
const HCM = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const ROUTER = { name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } };

/*
 * Port numbers test/support/envoy.ts replaces (it requires each in the file): 10000 and 15001 are
 * the listeners it reads back by name (ingress, egress), 8080 the app, 18081 vmcontroller, 9901
 * Envoy's admin, 9191 the sidecar. Here 9191 stands for the sidecar's inbound-direction listener;
 * the outbound-direction one is written with its real port.
 */
const PLACEHOLDER = { ingress: 10000, egress: 15001, app: 8080, vmcontroller: 18081, admin: 9901, inboundListener: 9191 } as const;

type Yaml = Record<string, unknown>;

function documentsOf(file: string): Yaml[] {
  return parseAllDocuments(readFileSync(new URL(file, EXAMPLES), 'utf8')).map((document) => document.toJS() as Yaml);
}

function ofKind(documents: readonly Yaml[], kind: string, name?: string): Yaml {
  const found = documents.find((document) => document.kind === kind && (name === undefined || (document.metadata as Yaml).name === name));
  if (!found) throw new Error(`no ${kind} ${name ?? ''} in the example`);
  return found;
}

const at = (value: unknown, ...path: (string | number)[]): unknown =>
  path.reduce<unknown>((node, key) => (node !== null && typeof node === 'object' ? (node as Record<string, unknown>)[key] : undefined), value);

function staticCluster(name: string, port: number, http2: boolean): Yaml {
  return {
    name,
    type: 'STATIC',
    connect_timeout: '1s',
    typed_extension_protocol_options: {
      'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
        '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
        ...(http2 ? { explicit_http_config: { http2_protocol_options: {} } } : { use_downstream_protocol_config: { http_protocol_options: {}, http2_protocol_options: {} } }),
      },
    },
    load_assignment: { cluster_name: name, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } } }] }] },
  };
}

function listener(name: string, port: number, connectionManager: Yaml): Yaml {
  return {
    name,
    address: { socket_address: { address: '127.0.0.1', port_value: port } },
    filter_chains: [{ filters: [{ name: 'envoy.filters.network.http_connection_manager', typed_config: { '@type': HCM, codec_type: 'AUTO', ...connectionManager } }] }],
  };
}

function envoyConfig(listeners: Yaml[], clusters: Yaml[]): string {
  return stringify({ admin: { address: { socket_address: { address: '127.0.0.1', port_value: PLACEHOLDER.admin } } }, static_resources: { listeners, clusters } });
}

// ------------------------------------------------------------------------------------------ Istio

/**
 * What istiod makes of examples/istio: the CUSTOM filter on the sidecar's inbound listener, the
 * EnvoyFilter's filter on its outbound listener, and the clusters the ServiceEntry gives them.
 */
function istioEnvoyConfig(outboundListenerPort: number): string {
  const provider = at(ofKind(documentsOf('istio/mesh-config.yaml'), 'IstioOperator'), 'spec', 'meshConfig', 'extensionProviders', 0) as Yaml;
  const grpcProvider = provider.envoyExtAuthzGrpc as { service: string; port: number; timeout?: string; failOpen?: boolean; statusOnError?: string; includeRequestBodyInCheck?: Yaml };
  const pod = documentsOf('istio/gwadmin.yaml');
  const policy = ofKind(pod, 'AuthorizationPolicy');
  expect(at(policy, 'spec', 'provider', 'name')).toBe(provider.name);
  // The one rule shape the example uses; translated as builder.go does (notPaths → not_rule).
  const notPaths = at(policy, 'spec', 'rules', 0, 'to', 0, 'operation', 'notPaths') as string[];
  expect(at(policy, 'spec', 'rules', 'length')).toBe(1);
  const policyName = `istio-ext-authz-${String(provider.name)}-ns[cloud]-policy[gwadmin-jwtauth]-rule[0]`;
  const shadowRbac = {
    name: 'envoy.filters.http.rbac',
    typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC',
      shadow_rules: {
        action: 'DENY',
        policies: {
          [policyName]: {
            permissions: [{ and_rules: { rules: [{ not_rule: { or_rules: { rules: notPaths.map((path) => ({ url_path: { path: { exact: path } } })) } } }] } }],
            principals: [{ and_ids: { ids: [{ any: true }] } }],
          },
        },
      },
      shadow_rules_stat_prefix: 'istio_ext_authz_',
    },
  };
  const providerCluster = `outbound|${grpcProvider.port}||${grpcProvider.service}`;
  const customExtAuthz = {
    name: 'envoy.filters.http.ext_authz',
    typed_config: {
      '@type': EXT_AUTHZ,
      grpc_service: { envoy_grpc: { cluster_name: providerCluster, authority: grpcProvider.service }, timeout: grpcProvider.timeout ?? '600s' },
      status_on_error: grpcProvider.statusOnError ? { code: Number(grpcProvider.statusOnError) } : undefined,
      failure_mode_allow: grpcProvider.failOpen ?? false,
      transport_api_version: 'V3',
      with_request_body: grpcProvider.includeRequestBodyInCheck,
      filter_enabled_metadata: {
        filter: 'envoy.filters.http.rbac',
        path: [{ key: 'istio_ext_authz_shadow_effective_policy_id' }],
        value: { string_match: { prefix: `istio-ext-authz-${String(provider.name)}` } },
      },
    },
  };
  const inbound = listener('ingress', PLACEHOLDER.ingress, {
    stat_prefix: 'inbound_0.0.0.0_8080',
    route_config: { name: 'inbound|8080||', virtual_hosts: [{ name: 'inbound|http|8080', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'inbound|8080||' } }] }] },
    http_filters: [shadowRbac, customExtAuthz, ROUTER],
  });

  const envoyFilter = ofKind(pod, 'EnvoyFilter');
  const [filterPatch, virtualHostPatch] = at(envoyFilter, 'spec', 'configPatches') as Yaml[];
  const outboundFilter = at(filterPatch, 'patch', 'value') as Yaml;
  const outboundCluster = at(outboundFilter, 'typed_config', 'grpc_service', 'envoy_grpc', 'cluster_name') as string;
  const vmcontrollerHost = at(virtualHostPatch, 'match', 'routeConfiguration', 'vhost', 'name') as string;
  const [fqdn] = vmcontrollerHost.split(':') as [string];
  const outbound = listener('egress', PLACEHOLDER.egress, {
    stat_prefix: 'outbound_0.0.0.0_8443',
    route_config: {
      name: '8443',
      virtual_hosts: [
        {
          name: vmcontrollerHost,
          domains: [vmcontrollerHost, fqdn, 'vmcontroller', 'vmcontroller:8443', 'vmcontroller.cloud', 'vmcontroller.cloud:8443'],
          routes: [{ match: { prefix: '/' }, route: { cluster: `outbound|8443||${fqdn}` } }],
          ...(at(virtualHostPatch, 'patch', 'value') as Yaml),
        },
        // What Istio sends elsewhere (PassthroughCluster); the EnvoyFilter leaves it unchecked.
        { name: 'allow_any', domains: ['*'], routes: [{ match: { prefix: '/' }, direct_response: { status: 200, body: { inline_string: 'passthrough' } } }] },
      ],
    },
    http_filters: [outboundFilter, ROUTER],
  });

  return envoyConfig(
    [inbound, outbound],
    [
      staticCluster('inbound|8080||', PLACEHOLDER.app, false),
      staticCluster(`outbound|8443||${fqdn}`, PLACEHOLDER.vmcontroller, false),
      staticCluster(providerCluster, PLACEHOLDER.inboundListener, true),
      staticCluster(outboundCluster, outboundListenerPort, true),
    ],
  );
}

// ---------------------------------------------------------------------------------- Envoy Gateway

interface SecurityPolicy {
  readonly metadata: { readonly name: string; readonly namespace: string };
  readonly spec: {
    readonly targetRefs: readonly { readonly name: string }[];
    readonly extAuth: {
      readonly grpc: { readonly backendRefs: readonly { readonly name: string; readonly port: number }[] };
      readonly headersToExtAuth?: readonly string[];
      readonly bodyToExtAuth?: { readonly maxRequestBytes: number };
      readonly timeout?: string;
      readonly failOpen?: boolean;
      readonly statusOnError?: number;
      readonly contextExtensions?: readonly { readonly name: string; readonly value: string }[];
    };
  };
}

/** extauth.go's filter, cluster and per-route enablement for one SecurityPolicy. */
function envoyGatewayExtAuthz(policy: SecurityPolicy) {
  const { name, namespace } = policy.metadata;
  const { extAuth } = policy.spec;
  const backend = extAuth.grpc.backendRefs[0] as { name: string; port: number };
  const filterName = `envoy.filters.http.ext_authz/securitypolicy/${namespace}/${name}`;
  const clusterName = `securitypolicy/${namespace}/${name}/${namespace}/${backend.name}`;
  const filter = {
    name: filterName,
    disabled: true,
    typed_config: {
      '@type': EXT_AUTHZ,
      transport_api_version: 'V3',
      failure_mode_allow: extAuth.failOpen,
      allowed_headers: extAuth.headersToExtAuth && { patterns: extAuth.headersToExtAuth.map((header) => ({ exact: header, ignore_case: true })) },
      with_request_body: extAuth.bodyToExtAuth && { max_request_bytes: extAuth.bodyToExtAuth.maxRequestBytes },
      grpc_service: { envoy_grpc: { cluster_name: clusterName, authority: `${backend.name}.${namespace}:${backend.port}` }, timeout: extAuth.timeout ?? '10s' },
      status_on_error: extAuth.statusOnError === undefined ? undefined : { code: extAuth.statusOnError },
    },
  };
  const contextExtensions = extAuth.contextExtensions && Object.fromEntries(extAuth.contextExtensions.map((extension) => [extension.name, extension.value]));
  const enable = { [filterName]: { '@type': EXT_AUTHZ_PER_ROUTE, check_settings: contextExtensions ? { context_extensions: contextExtensions } : {} } };
  return { filter, cluster: staticCluster(clusterName, PLACEHOLDER.inboundListener, true), enable, targets: policy.spec.targetRefs.map((ref) => ref.name) };
}

interface HttpRouteMatch {
  readonly path: { readonly type: 'Exact' | 'PathPrefix'; readonly value: string };
  readonly method?: string;
}

/**
 * What the Gateway's listener gets from examples/envoy-gateway: the HTTPRoutes' matches (exact
 * before prefix, as Envoy Gateway orders them), each enabling the filter of the policy that targets
 * its route. `extraMatches` adds matches to a route of the example, for calls this test needs.
 */
function envoyGatewayConfig(extraMatches: Readonly<Record<string, readonly HttpRouteMatch[]>>, misdirectedPolicy: SecurityPolicy): string {
  const documents = documentsOf('envoy-gateway/gwadmin.yaml');
  const policies = documents.filter((document) => document.kind === 'SecurityPolicy').map((document) => envoyGatewayExtAuthz(document as unknown as SecurityPolicy));
  const routes = documents
    .filter((document) => document.kind === 'HTTPRoute')
    .flatMap((document) => {
      const name = at(document, 'metadata', 'name') as string;
      const matches = [...(at(document, 'spec', 'rules', 0, 'matches') as HttpRouteMatch[]), ...(extraMatches[name] ?? [])];
      const enabling = policies.find((policy) => policy.targets.includes(name));
      return matches.map((match) => ({
        match: {
          ...(match.path.type === 'Exact' ? { path: match.path.value } : { prefix: match.path.value }),
          ...(match.method ? { headers: [{ name: ':method', string_match: { exact: match.method } }] } : {}),
        },
        route: { cluster: 'httproute/cloud/gwadmin/rule/0', timeout: '30s' },
        ...(enabling ? { typed_per_filter_config: enabling.enable } : {}),
      }));
    })
    .sort((a, b) => Number('prefix' in a.match) - Number('prefix' in b.match));
  const connectionManager = (statPrefix: string, virtualHost: Yaml, filters: Yaml[]): Yaml => ({
    stat_prefix: statPrefix,
    use_remote_address: true,
    normalize_path: true,
    merge_slashes: true,
    path_with_escaped_slashes_action: 'UNESCAPE_AND_REDIRECT',
    common_http_protocol_options: { headers_with_underscores_action: 'REJECT_REQUEST' },
    route_config: { name: statPrefix, virtual_hosts: [virtualHost] },
    http_filters: [...filters, { ...ROUTER, typed_config: { ...ROUTER.typed_config, suppress_envoy_headers: true } }],
  });
  const misdirected = envoyGatewayExtAuthz(misdirectedPolicy);
  return envoyConfig(
    [
      listener('ingress', PLACEHOLDER.ingress, connectionManager('http-10080', { name: 'cloud/public-gateway/http', domains: ['*'], routes }, policies.map((policy) => policy.filter))),
      // A second Gateway listener, named egress only because test/support/envoy.ts reads back the
      // ports of listeners named ingress and egress.
      listener(
        'egress',
        PLACEHOLDER.egress,
        connectionManager(
          'http-10081',
          { name: 'cloud/public-gateway/internal', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'httproute/cloud/vmcontroller/rule/0' }, typed_per_filter_config: misdirected.enable }] },
          [misdirected.filter],
        ),
      ),
    ],
    [
      staticCluster('httproute/cloud/gwadmin/rule/0', PLACEHOLDER.app, false),
      staticCluster('httproute/cloud/vmcontroller/rule/0', PLACEHOLDER.vmcontroller, false),
      ...policies.map((policy) => policy.cluster),
      misdirected.cluster,
    ],
  );
}

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
    expect(altered.grpcStatus).toBe(status.INTERNAL);
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
