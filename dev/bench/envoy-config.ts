/**
 * Bench-only Envoy configurations, generated from envoy/envoy.yaml so the parts under test stay
 * what users deploy: the ext_authz filter block, the ingress HTTP connection manager settings and
 * the authorizer cluster are read from that file and only re-pointed (ports, route table).
 * The "upstream" is an Envoy direct_response, so no app process sets the ceiling; ext_authz and
 * jwt_authn still run before the router answers.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { PACKAGE_ROOT } from '../../src/base/package-root.js';
import { AUDIENCE, ISSUER, UPSTREAM } from './fixtures.js';
import { methodPath } from './grpc-call.js';
import type { Listener } from './scenarios.js';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

// From the package root, so the Envoy check's test can generate these configs from source too.
const ENVOY_YAML = join(PACKAGE_ROOT, 'envoy', 'envoy.yaml');

function obj(value: Json | undefined, what: string): JsonObject {
  if (value === null || value === undefined || typeof value !== 'object' || Array.isArray(value)) throw new Error(`envoy.yaml: ${what} is not an object`);
  return value;
}
function arr(value: Json | undefined, what: string): Json[] {
  if (!Array.isArray(value)) throw new Error(`envoy.yaml: ${what} is not a list`);
  return value;
}
const clone = <T extends Json>(value: T): T => structuredClone(value);

interface Deployed {
  readonly hcm: JsonObject;
  readonly extAuthz: JsonObject;
  readonly authzCluster: JsonObject;
}

/** The pieces of envoy/envoy.yaml the benchmark reuses verbatim. */
function deployedPieces(file = ENVOY_YAML): Deployed {
  const root = obj(parse(readFileSync(file, 'utf8'), { merge: true }) as Json, 'root');
  const statics = obj(root.static_resources, 'static_resources');
  const ingress = arr(statics.listeners, 'listeners').map((l) => obj(l, 'listener')).find((l) => l.name === 'ingress');
  if (!ingress) throw new Error('envoy.yaml has no ingress listener');
  const chain = obj(arr(ingress.filter_chains, 'filter_chains')[0], 'filter chain');
  const hcm = obj(obj(arr(chain.filters, 'filters')[0], 'hcm filter').typed_config, 'hcm typed_config');
  const filters = arr(hcm.http_filters, 'http_filters').map((f) => obj(f, 'http filter'));
  const extAuthz = filters.find((f) => f.name === 'envoy.filters.http.ext_authz');
  if (!extAuthz) throw new Error('envoy.yaml ingress has no ext_authz filter');
  const authzCluster = arr(statics.clusters, 'clusters').map((c) => obj(c, 'cluster')).find((c) => c.name === 'jwtauth_sidecar');
  if (!authzCluster) throw new Error('envoy.yaml has no jwtauth_sidecar cluster');
  return { hcm, extAuthz, authzCluster };
}

type ListenerKind =
  | { readonly kind: 'bare' }
  | { readonly kind: 'jwt_authn'; readonly issuer: string; readonly audience: string; readonly jwks: string }
  | {
      readonly kind: 'ext_authz';
      readonly contextExtensions: Readonly<Record<string, string>>;
      /** Overrides envoy.yaml's `encode_raw_headers` (only for the classic OPA-Envoy variant). */
      readonly encodeRawHeaders?: boolean;
      /** Exact paths of unary gRPC methods, each with its own route before the catch-all. */
      readonly grpcRoutes?: readonly GrpcRoute[];
    };

interface GrpcRoute {
  readonly path: string;
  /**
   * Keep the filter-level `with_request_body` (buffer the body, send it packed as bytes in the
   * Check) because the method's rule reads the message. Otherwise the route opts out, as every route
   * of the bench's that reads no body does.
   */
  readonly buffersBody: boolean;
}

export interface BenchListener {
  readonly name: string;
  readonly port: number;
  readonly filter: ListenerKind;
}

/**
 * A scenario group's listener (scenarios.ts) as the configuration takes it: on `port`, and, where it
 * runs jwt_authn, verifying tokens with `jwks`.
 */
export function benchListener(listener: Listener, port: number, jwks: string): BenchListener {
  const { name, filter } = listener;
  switch (filter.kind) {
    case 'bare':
      return { name, port, filter };
    case 'jwt_authn':
      return { name, port, filter: { kind: 'jwt_authn', issuer: ISSUER, audience: AUDIENCE, jwks } };
    case 'ext_authz': {
      const contextExtensions: Record<string, string> = filter.direction === 'inbound' ? { direction: 'inbound' } : { direction: 'outbound', audience: UPSTREAM };
      const grpcRoutes = (filter.grpcRoutes ?? []).map((route) => ({ path: methodPath(route.method), buffersBody: route.buffersBody }));
      return { name, port, filter: { kind: 'ext_authz', contextExtensions, grpcRoutes, ...(filter.encodeRawHeaders === undefined ? {} : { encodeRawHeaders: filter.encodeRawHeaders }) } };
    }
  }
}

/** Envoy jwt_authn's `jwt_cache_config.jwt_cache_size` in the bench (Envoy's default when set: 100). */
const JWT_AUTHN_CACHE_SIZE = 10_000;

const ROUTER = { name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } };

/**
 * envoy.yaml's ext_authz filter buffers request bodies (`with_request_body`, so that rules reading
 * `{body.…}` get the message) and its routes that read no body opt out. A bench route that did not
 * would hold every request until its body arrived and send the body in every Check: not what the
 * scenarios measure, nor what the deployed routes do.
 */
function extAuthzPerRoute(contextExtensions: Readonly<Record<string, string>>, buffersBody: boolean): JsonObject {
  return {
    'envoy.filters.http.ext_authz': {
      '@type': 'type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute',
      check_settings: { context_extensions: { ...contextExtensions }, ...(buffersBody ? {} : { disable_request_body_buffering: true }) },
    },
  };
}

/** Answers like a gRPC server's OK (trailers-only), so a client can tell it from a denial by grpc-status. */
const GRPC_OK_HEADERS: Json[] = [
  { header: { key: 'content-type', value: 'application/grpc' }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' },
  { header: { key: 'grpc-status', value: '0' }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' },
];

function listenerConfig(pieces: Deployed, listener: BenchListener): JsonObject {
  const hcm = clone(pieces.hcm);
  hcm.stat_prefix = listener.name;
  const route: JsonObject = { match: { prefix: '/' }, direct_response: { status: 200, body: { inline_string: 'ok\n' } } };
  const routes: JsonObject[] = [];
  const filters: Json[] = [];
  const filter = listener.filter;
  if (filter.kind === 'ext_authz') {
    const extAuthz = clone(pieces.extAuthz);
    if (filter.encodeRawHeaders !== undefined) obj(extAuthz.typed_config, 'ext_authz typed_config').encode_raw_headers = filter.encodeRawHeaders;
    filters.push(extAuthz);
    for (const grpc of filter.grpcRoutes ?? []) {
      routes.push({
        match: { path: grpc.path },
        direct_response: { status: 200 },
        response_headers_to_add: GRPC_OK_HEADERS,
        typed_per_filter_config: extAuthzPerRoute(filter.contextExtensions, grpc.buffersBody),
      });
    }
    route.typed_per_filter_config = extAuthzPerRoute(filter.contextExtensions, false);
  } else if (filter.kind === 'jwt_authn') {
    filters.push({
      name: 'envoy.filters.http.jwt_authn',
      typed_config: {
        '@type': 'type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication',
        providers: {
          bench: {
            issuer: filter.issuer,
            audiences: [filter.audience],
            local_jwks: { inline_string: filter.jwks },
            forward: true,
            // The anchor at its best: a token verified once is not verified again (Envoy's cache
            // is off unless configured). As many entries as the sidecar's verified-token cache.
            jwt_cache_config: { jwt_cache_size: JWT_AUTHN_CACHE_SIZE },
          },
        },
        rules: [{ match: { prefix: '/' }, requires: { provider_name: 'bench' } }],
      },
    });
  }
  filters.push(ROUTER);
  hcm.http_filters = filters;
  hcm.route_config = { name: listener.name, virtual_hosts: [{ name: listener.name, domains: ['*'], routes: [...routes, route] }] };
  return {
    name: listener.name,
    address: { socket_address: { address: '127.0.0.1', port_value: listener.port } },
    filter_chains: [{ filters: [{ name: 'envoy.filters.network.http_connection_manager', typed_config: hcm }] }],
  };
}

/** A complete bootstrap: the listeners, and the deployed authorizer cluster pointed at `authzPort`. */
export function benchEnvoyConfig(listeners: readonly BenchListener[], adminPort: number, authzPort: number | undefined): JsonObject {
  const pieces = deployedPieces();
  const clusters: Json[] = [];
  if (authzPort !== undefined) {
    const cluster = clone(pieces.authzCluster);
    cluster.load_assignment = {
      cluster_name: 'jwtauth_sidecar',
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: authzPort } } } }] }],
    };
    clusters.push(cluster);
  }
  return {
    admin: { address: { socket_address: { address: '127.0.0.1', port_value: adminPort } } },
    static_resources: { listeners: listeners.map((l) => listenerConfig(pieces, l)), clusters },
  };
}
