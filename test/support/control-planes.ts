/**
 * What Istio and Envoy Gateway make of the repository's examples: the Envoy configuration their
 * control planes generate, translated field by field, so a change to an example changes what is
 * tested (test/e2e/integrations.test.ts runs these through a real Envoy; the Envoy check's test
 * validates them with `validate --envoy`).
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
 * out. Port numbers are dev/envoy.ts's placeholders (PLACEHOLDER), which it rewrites.
 */
import { readFileSync } from 'node:fs';
import { parseAllDocuments, stringify } from 'yaml';

const EXAMPLES = new URL('../../examples/', import.meta.url);
const EXT_AUTHZ = 'type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz';
const EXT_AUTHZ_PER_ROUTE = 'type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute';
const HCM = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const ROUTER = { name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } };

/*
 * Port numbers dev/envoy.ts replaces (it requires each in the file): 10000 and 15001 are
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
export function istioEnvoyConfig(outboundListenerPort: number): string {
  const provider = at(ofKind(documentsOf('istio/mesh-config.yaml'), 'IstioOperator'), 'spec', 'meshConfig', 'extensionProviders', 0) as Yaml;
  const grpcProvider = provider.envoyExtAuthzGrpc as { service: string; port: number; timeout?: string; failOpen?: boolean; statusOnError?: string; includeRequestBodyInCheck?: Yaml };
  const pod = documentsOf('istio/gwadmin.yaml');
  const policy = ofKind(pod, 'AuthorizationPolicy');
  if (at(policy, 'spec', 'provider', 'name') !== provider.name) throw new Error('the AuthorizationPolicy names another provider than mesh-config.yaml');
  // The one rule shape the example uses; translated as builder.go does (notPaths → not_rule).
  const notPaths = at(policy, 'spec', 'rules', 0, 'to', 0, 'operation', 'notPaths') as string[];
  if (at(policy, 'spec', 'rules', 'length') !== 1) throw new Error('the AuthorizationPolicy has more rules than this translation handles');
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

export interface SecurityPolicy {
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

export interface HttpRouteMatch {
  readonly path: { readonly type: 'Exact' | 'PathPrefix'; readonly value: string };
  readonly method?: string;
}

/**
 * What the Gateway's listener gets from examples/envoy-gateway: the HTTPRoutes' matches (exact
 * before prefix, as Envoy Gateway orders them), each enabling the filter of the policy that targets
 * its route. `extraMatches` adds matches to a route of the example, for calls this test needs.
 */
export function envoyGatewayConfig(extraMatches: Readonly<Record<string, readonly HttpRouteMatch[]>>, misdirectedPolicy?: SecurityPolicy): string {
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
  // `misdirectedPolicy`: a policy on a second Gateway listener, for a test that needs one.
  const misdirected = misdirectedPolicy && envoyGatewayExtAuthz(misdirectedPolicy);
  const internalRoute = { match: { prefix: '/' }, route: { cluster: 'httproute/cloud/vmcontroller/rule/0' }, ...(misdirected ? { typed_per_filter_config: misdirected.enable } : {}) };
  return envoyConfig(
    [
      listener('ingress', PLACEHOLDER.ingress, connectionManager('http-10080', { name: 'cloud/public-gateway/http', domains: ['*'], routes }, policies.map((policy) => policy.filter))),
      // A second Gateway listener, named egress only because dev/envoy.ts reads back the
      // ports of listeners named ingress and egress.
      listener('egress', PLACEHOLDER.egress, connectionManager('http-10081', { name: 'cloud/public-gateway/internal', domains: ['*'], routes: [internalRoute] }, misdirected ? [misdirected.filter] : [])),
    ],
    [
      staticCluster('httproute/cloud/gwadmin/rule/0', PLACEHOLDER.app, false),
      staticCluster('httproute/cloud/vmcontroller/rule/0', PLACEHOLDER.vmcontroller, false),
      ...policies.map((policy) => policy.cluster),
      ...(misdirected ? [misdirected.cluster] : []),
    ],
  );
}

