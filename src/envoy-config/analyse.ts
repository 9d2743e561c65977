/**
 * The Envoy check: an Envoy configuration and what the sidecar's configuration expects of it in,
 * findings out. Each finding names where in Envoy's configuration the problem is (listener → filter
 * chain → filter, or the route), what goes wrong at run time, and the fix. Pure: no files, no
 * network; src/commands/envoy-check.ts reads the inputs and prints.
 */
import { isIP } from 'node:net';
import { EXT_AUTHZ_TYPE, parseAs } from './collect.js';
import type { EnvoyConfigView } from './collect.js';
import { extAuthzSchema, healthCheckFilterSchema, httpConnectionManagerSchema } from './envoy-schema.js';
import type { Cluster, EnvoyAddress, ExtAuthz, HttpFilter, RouteConfiguration, StringMatcher } from './envoy-schema.js';
import { describeMatch, effectiveRoute, firstRouteFor } from './routes.js';
import type { Direction } from '../core/request-context.js';
import type { HeaderNeed, SidecarExpectations, SidecarListener } from './sidecar-expectations.js';

export const ENVOY_CHECKS = [
  'ext-authz-missing',
  'grpc-service',
  'sidecar-cluster',
  'http2',
  'transport-api-version',
  'failure-mode-allow',
  'status-on-error',
  'timeout',
  'retry-max-interval',
  'request-body',
  'pack-as-bytes',
  'body-buffering',
  'direction',
  'audience',
  'allowed-headers',
  'health-check',
] as const;
export type EnvoyCheckId = (typeof ENVOY_CHECKS)[number];

export interface EnvoyFinding {
  readonly check: EnvoyCheckId;
  readonly severity: 'error' | 'warning';
  /** Where in Envoy's configuration: listener → filter chain → filter, or → route. */
  readonly at: string;
  /** What is configured and what goes wrong at run time because of it. */
  readonly problem: string;
  readonly fix: string;
}

export interface EnvoyAnalysis {
  readonly findings: readonly EnvoyFinding[];
  /** What could not be checked, and why (printed, never counted). */
  readonly notes: readonly string[];
  /** What was looked at, so "no findings" is never confused with "nothing checked". */
  readonly filters: number;
  readonly routes: number;
}

const HCM_TYPE = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const HEALTH_CHECK_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.health_check.v3.HealthCheck';
const HTTP_PROTOCOL_OPTIONS = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';
/** Envoy's default grpc_service.timeout. */
const DEFAULT_GRPC_TIMEOUT_MS = 200;
/** core.v3.RetryPolicy: base_interval 1 s unless set; max_interval 10 times the base unless set. */
const DEFAULT_RETRY_BASE_MS = 1000;
/** Envoy health-checks a cluster without traffic every 60 s unless no_traffic_interval says otherwise. */
const DEFAULT_NO_TRAFFIC_INTERVAL_MS = 60_000;
const MAX_SENSIBLE_NO_TRAFFIC_INTERVAL_MS = 10_000;
/**
 * What Envoy's admin /config_dump shows instead of a field marked sensitive, which
 * context_extensions is: the keys a route sets are visible, their values are not.
 */
const REDACTED = '[redacted]';
/** envoy.type.v3.StatusCode names Envoy prints in /config_dump, for the codes a status_on_error uses. */
const STATUS_CODE_NAMES: Readonly<Record<string, number>> = {
  OK: 200, BadRequest: 400, Unauthorized: 401, Forbidden: 403, NotFound: 404, TooManyRequests: 429,
  InternalServerError: 500, NotImplemented: 501, BadGateway: 502, ServiceUnavailable: 503, GatewayTimeout: 504,
};

interface ExtAuthzSite {
  readonly at: string;
  readonly filter: HttpFilter;
  readonly config: ExtAuthz;
  /** Undefined when the input does not hold the route table (a filter alone, or RDS not dumped). */
  readonly routeConfig: RouteConfiguration | undefined;
  readonly routeConfigAt: string;
}

function ms(value: number): string {
  return value >= 1000 ? `${value / 1000} s` : `${value} ms`;
}

/** Every ext_authz filter in the input, and the clusters Envoy's readiness (health_check filter) depends on. */
function findSites(view: EnvoyConfigView): { sites: ExtAuthzSite[]; readinessClusters: Set<string> } {
  const sites: ExtAuthzSite[] = [];
  const readinessClusters = new Set<string>();
  for (const listener of view.listeners) {
    const chains = [...listener.filter_chains.map((chain, i) => ({ chain, label: `filter_chains[${i}]${chain.name ? ` ${chain.name}` : ''}` }))];
    if (listener.default_filter_chain) chains.push({ chain: listener.default_filter_chain, label: 'default_filter_chain' });
    for (const { chain, label } of chains) {
      for (const network of chain.filters) {
        if (network.typed_config?.['@type'] !== HCM_TYPE) continue;
        const hcm = parseAs(httpConnectionManagerSchema, network.typed_config, `listener ${listener.name} → ${label} → ${network.name}`);
        const hcmAt = `listener ${listener.name} → ${label} → ${network.name}${hcm.stat_prefix ? ` (${hcm.stat_prefix})` : ''}`;
        const routeConfig = hcm.route_config ?? (hcm.rds ? view.routeConfigs.get(hcm.rds.route_config_name) : undefined);
        hcm.http_filters.forEach((filter, i) => {
          const type = filter.typed_config?.['@type'];
          if (type === HEALTH_CHECK_TYPE) {
            const health = healthCheckFilterSchema.safeParse(filter.typed_config);
            for (const name of Object.keys(health.success ? (health.data.cluster_min_healthy_percentages ?? {}) : {})) readinessClusters.add(name);
          }
          if (type !== EXT_AUTHZ_TYPE) return;
          const config = parseAs(extAuthzSchema, filter.typed_config, `${hcmAt} → http_filters[${i}] ${filter.name}`);
          sites.push({ at: `${hcmAt} → http_filters[${i}] ${filter.name}`, filter, config, routeConfig, routeConfigAt: `${hcmAt} → route_config ${routeConfig?.name ?? ''}` });
        });
      }
    }
  }
  view.looseFilters.forEach((filter) => {
    sites.push({ at: `http filter ${filter.name}`, filter, config: parseAs(extAuthzSchema, filter.typed_config, `http filter ${filter.name}`), routeConfig: undefined, routeConfigAt: '' });
  });
  return { sites, readinessClusters };
}

const LOOPBACK = (host: string): boolean => host === 'localhost' || host === '::1' || host.startsWith('127.');
const WILDCARD = (host: string): boolean => host === '0.0.0.0' || host === '::' || host === '';

/** Whether a connection to host:port reaches the sidecar listener (by address when it is one, else by port). */
function reaches(host: string, port: number, listener: SidecarListener): boolean {
  if (port !== listener.port) return false;
  if (isIP(host) === 0 && host !== 'localhost') return true; // a DNS name: only the port can be compared
  return WILDCARD(listener.host) || host === listener.host || (LOOPBACK(host) && LOOPBACK(listener.host));
}

function endpointAddresses(cluster: Cluster, view: EnvoyConfigView): { host: string; port: number }[] {
  const assignment = cluster.load_assignment ?? view.endpoints.get(cluster.name);
  return (assignment?.endpoints ?? []).flatMap((group) =>
    group.lb_endpoints.flatMap((lb) => {
      const socket = (lb.endpoint?.address as EnvoyAddress | undefined)?.socket_address;
      return socket?.port_value === undefined ? [] : [{ host: socket.address, port: socket.port_value }];
    }),
  );
}

function speaksHttp2(cluster: Cluster): boolean {
  if (cluster.http2_protocol_options !== undefined) return true;
  return cluster.typed_extension_protocol_options?.[HTTP_PROTOCOL_OPTIONS]?.explicit_http_config?.http2_protocol_options !== undefined;
}

function stringMatches(matcher: StringMatcher, value: string): boolean {
  const fold = (s: string): string => (matcher.ignore_case ? s.toLowerCase() : s);
  const v = fold(value);
  if (matcher.exact !== undefined) return v === fold(matcher.exact);
  if (matcher.prefix !== undefined) return v.startsWith(fold(matcher.prefix));
  if (matcher.suffix !== undefined) return v.endsWith(fold(matcher.suffix));
  if (matcher.contains !== undefined) return v.includes(fold(matcher.contains));
  if (matcher.safe_regex !== undefined) {
    try {
      return new RegExp(`^(?:${matcher.safe_regex.regex})$`).test(value);
    } catch {
      return true;
    }
  }
  return false;
}

function statusCodeOf(code: number | string | undefined): number | undefined {
  if (code === undefined) return undefined;
  return typeof code === 'number' ? code : (STATUS_CODE_NAMES[code] ?? (/^\d+$/.test(code) ? Number(code) : undefined));
}

export function analyseEnvoyConfig(view: EnvoyConfigView, sidecar: SidecarExpectations): EnvoyAnalysis {
  const findings: EnvoyFinding[] = [];
  const add = (finding: EnvoyFinding): void => {
    findings.push(finding);
  };
  const { sites, readinessClusters } = findSites(view);
  if (sites.length === 0) {
    add({
      check: 'ext-authz-missing',
      severity: 'error',
      at: `${view.kind} (${view.listeners.length} listeners)`,
      problem: 'no ext_authz filter (envoy.extensions.filters.http.ext_authz.v3.ExtAuthz) in any listener’s HTTP connection manager: nothing asks the sidecar, every request passes unchecked',
      fix: 'add the ext_authz filter before the router (docs/envoy.md), or check the Envoy that has it',
    });
  }
  let routes = 0;
  const clusterDirections = new Map<string, Direction | undefined | null>();
  for (const site of sites) routes += analyseSite(site, view, sidecar, readinessClusters, clusterDirections, add);
  const notes: string[] = [];
  if (JSON.stringify(view.listeners).includes(`"${REDACTED}"`) || [...view.routeConfigs.values()].some((r) => JSON.stringify(r).includes(`"${REDACTED}"`))) {
    notes.push(
      'Envoy’s admin redacts context_extensions values (a sensitive field): a route’s direction and audience were checked for presence only. Run validate --envoy on the configuration Envoy was given (Envoy Gateway: egctl x translate --to xds; Istio: the EnvoyFilter) to compare them.',
    );
  }
  return { findings, notes, filters: sites.length, routes };
}

/** Checks one ext_authz filter and the routes it runs on; returns how many routes it looked at. */
function analyseSite(
  site: ExtAuthzSite,
  view: EnvoyConfigView,
  sidecar: SidecarExpectations,
  readinessClusters: ReadonlySet<string>,
  /** Clusters already checked (several filters often share one), with the direction found. */
  clusterDirections: Map<string, Direction | undefined | null>,
  add: (finding: EnvoyFinding) => void,
): number {
  const { config, at } = site;
  const grpc = config.grpc_service;

  // ------------------------------------------------------------------ where the Check goes
  /** The direction of the sidecar listener the Check reaches; null when it cannot be told. */
  let listenerDirection: Direction | undefined | null = null;
  if (config.http_service !== undefined || grpc === undefined) {
    add({
      check: 'grpc-service',
      severity: 'error',
      at,
      problem: config.http_service !== undefined ? 'the filter calls an http_service; the sidecar answers only the gRPC ext_authz API, so every Check fails' : 'the filter has no grpc_service: Envoy refuses the configuration or never asks the sidecar',
      fix: 'set grpc_service.envoy_grpc.cluster_name to the cluster of the sidecar’s gRPC listener (server.grpcAddress or server.listeners)',
    });
  } else if (grpc.envoy_grpc !== undefined && view.clusters !== undefined) {
    const name = grpc.envoy_grpc.cluster_name;
    const cluster = view.clusters.get(name);
    if (cluster === undefined) {
      add({ check: 'sidecar-cluster', severity: 'error', at: `${at} → grpc_service.envoy_grpc`, problem: `cluster_name ${name} names no cluster: every Check fails (status_on_error)`, fix: `add a cluster ${name} whose endpoint is the sidecar’s listener, or correct the name` });
    } else if (clusterDirections.has(name)) {
      listenerDirection = clusterDirections.get(name);
    } else {
      listenerDirection = checkCluster(cluster, at, view, sidecar, readinessClusters, add);
      clusterDirections.set(name, listenerDirection);
    }
  } else if (grpc.google_grpc !== undefined) {
    const target = /^(?:[a-z]+:\/\/\/?)?(\[[^\]]+\]|[^:/]+):(\d+)$/.exec(grpc.google_grpc.target_uri);
    const matched = target ? sidecar.listeners.filter((l) => reaches((target[1] ?? '').replace(/^\[|\]$/g, ''), Number(target[2]), l)) : [];
    if (matched.length === 0) {
      add({ check: 'sidecar-cluster', severity: 'warning', at: `${at} → grpc_service.google_grpc`, problem: `target_uri ${grpc.google_grpc.target_uri} is none of the sidecar’s listeners (${listenerList(sidecar)})`, fix: 'point target_uri at server.grpcAddress or one of server.listeners' });
    } else listenerDirection = matched[0]?.direction;
  }
  if (listenerDirection === null && view.clusters === undefined && sidecar.listeners.length === 1) listenerDirection = undefined; // only grpcAddress exists

  // ------------------------------------------------------------------ the filter's own settings
  const version = config.transport_api_version;
  if (version === undefined) {
    add({ check: 'transport-api-version', severity: 'warning', at, problem: 'transport_api_version is not set, so the API the filter speaks is whatever this Envoy version defaults to; the sidecar serves envoy.service.auth.v3 only', fix: 'set transport_api_version: V3' });
  } else if (version !== 'V3' && version !== 2) {
    add({ check: 'transport-api-version', severity: 'error', at, problem: `transport_api_version is ${String(version)}; the sidecar serves envoy.service.auth.v3 only, so every Check fails`, fix: 'set transport_api_version: V3' });
  }
  if (config.failure_mode_allow === true) {
    add({ check: 'failure-mode-allow', severity: 'error', at, problem: 'failure_mode_allow is true: whenever the sidecar cannot answer (down, restarting, timed out) Envoy lets the request through unchecked, so an outage becomes an allow', fix: 'set failure_mode_allow: false; if failing open is intended, pass --accept failure-mode-allow' });
  }
  const status = statusCodeOf(config.status_on_error?.code);
  if (status === undefined || status < 500) {
    add({
      check: 'status-on-error',
      severity: 'warning',
      at,
      problem: status === undefined ? 'status_on_error is not set: when the sidecar cannot be asked, callers get 403, which looks like a denial and is not retried' : `status_on_error is ${status}: an outage of the sidecar looks like ${status < 400 ? 'a success' : 'a denial'} to callers and is not retried`,
      fix: 'set status_on_error: { code: 503 } (Istio: statusOnError: "503"; Envoy Gateway: statusOnError: 503)',
    });
  }
  const timeoutMs = grpc?.timeout ?? DEFAULT_GRPC_TIMEOUT_MS;
  if (grpc !== undefined && timeoutMs <= sidecar.deadlineMs) {
    add({
      check: 'timeout',
      severity: 'error',
      at: `${at} → grpc_service.timeout`,
      problem: `${grpc.timeout === undefined ? 'timeout is not set (Envoy’s default is 200 ms)' : `timeout is ${ms(timeoutMs)}`}, not above spicedb.deadlineMs (${ms(sidecar.deadlineMs)}): a check SpiceDB answers slowly but in time is cut by Envoy and answered with status_on_error`,
      fix: `set grpc_service.timeout above ${ms(sidecar.deadlineMs)}, e.g. ${Math.max(1, Math.ceil((sidecar.deadlineMs * 3) / 1000))}s (a cached decision takes well under 1 ms, so the timeout only bounds a stuck sidecar)`,
    });
  }
  const backOff = grpc?.retry_policy?.retry_back_off;
  if (backOff !== undefined) {
    const perTryMs = backOff.max_interval ?? 10 * (backOff.base_interval ?? DEFAULT_RETRY_BASE_MS);
    if (perTryMs <= sidecar.deadlineMs) {
      add({
        check: 'retry-max-interval',
        severity: 'error',
        at: `${at} → grpc_service.retry_policy.retry_back_off`,
        problem: `max_interval is ${ms(perTryMs)}; Envoy also uses it as the per-try timeout of the Check, so any decision slower than that (up to spicedb.deadlineMs, ${ms(sidecar.deadlineMs)}) is cut and retried, and fails when the retries run out`,
        fix: `set retry_back_off.max_interval above ${ms(sidecar.deadlineMs)} (envoy/envoy.yaml uses 1s)`,
      });
    }
  }
  checkHeaders(site, sidecar, checkRoutesAndBody(site, sidecar, listenerDirection, add), add);
  return site.routeConfig?.virtual_hosts.reduce((n, vh) => n + vh.routes.length, 0) ?? 0;
}

function listenerList(sidecar: SidecarExpectations): string {
  return sidecar.listeners.map((l) => `${l.key} ${l.host}:${l.port}${l.direction ? ` ${l.direction}` : ''}`).join(', ');
}

/** The cluster the filter calls: reaches the sidecar, speaks HTTP/2, is health-checked usefully. Returns the listener's direction. */
function checkCluster(cluster: Cluster, at: string, view: EnvoyConfigView, sidecar: SidecarExpectations, readinessClusters: ReadonlySet<string>, add: (finding: EnvoyFinding) => void): Direction | undefined | null {
  const clusterAt = `cluster ${cluster.name}`;
  let direction: Direction | undefined | null = null;
  const addresses = endpointAddresses(cluster, view);
  if (addresses.length > 0) {
    const matched = addresses.flatMap((address) => sidecar.listeners.filter((listener) => reaches(address.host, address.port, listener)));
    if (matched.length === 0) {
      const byName = addresses.every((address) => isIP(address.host) === 0 && address.host !== 'localhost');
      add({
        check: 'sidecar-cluster',
        severity: byName ? 'warning' : 'error',
        at: `${clusterAt} (called by ${at})`,
        problem: `its endpoints (${addresses.map((a) => `${a.host}:${a.port}`).join(', ')}) are none of the sidecar’s gRPC listeners (${listenerList(sidecar)})${byName ? '; a Service may map the port, so this is only a warning' : ': every Check fails to connect and is answered with status_on_error'}`,
        fix: 'point the cluster’s endpoint at server.grpcAddress or one of server.listeners (same port; loopback when Envoy runs in the same pod)',
      });
    } else direction = matched[0]?.direction;
  }
  if (!speaksHttp2(cluster)) {
    add({
      check: 'http2',
      severity: 'error',
      at: clusterAt,
      problem: 'the cluster does not speak HTTP/2: gRPC needs it, so Envoy cannot reach the sidecar and every Check fails',
      fix: `add typed_extension_protocol_options: { ${HTTP_PROTOCOL_OPTIONS}: { "@type": type.googleapis.com/${HTTP_PROTOCOL_OPTIONS}, explicit_http_config: { http2_protocol_options: {} } } }`,
    });
  }
  if (cluster.health_checks.length === 0) {
    if (readinessClusters.has(cluster.name)) {
      add({ check: 'health-check', severity: 'warning', at: clusterAt, problem: 'Envoy’s readiness (health_check filter, cluster_min_healthy_percentages) counts this cluster, but it has no health_checks: an unchecked host is always healthy, so the pod reports ready while the sidecar is down or draining', fix: 'add health_checks with grpc_health_check { service_name: envoy.service.auth.v3.Authorization }, interval 2s, no_traffic_interval 2s' });
    }
    return direction;
  }
  cluster.health_checks.forEach((check, i) => {
    const checkAt = `${clusterAt} → health_checks[${i}]`;
    if (check.grpc_health_check === undefined) {
      add({ check: 'health-check', severity: 'warning', at: checkAt, problem: 'not a gRPC health check: it cannot see the sidecar’s NOT_SERVING while it drains, so Envoy keeps sending it Checks', fix: 'use grpc_health_check: { service_name: envoy.service.auth.v3.Authorization }' });
    }
    const idleMs = check.no_traffic_interval ?? DEFAULT_NO_TRAFFIC_INTERVAL_MS;
    if (idleMs > MAX_SENSIBLE_NO_TRAFFIC_INTERVAL_MS) {
      add({
        check: 'health-check',
        severity: 'warning',
        at: checkAt,
        problem: `${check.no_traffic_interval === undefined ? 'no_traffic_interval is not set: Envoy checks a cluster that has had no traffic only every 60 s' : `no_traffic_interval is ${ms(idleMs)}`}, so an idle pod reports ready for that long after its sidecar drained or died`,
        fix: `set no_traffic_interval to the interval (${check.interval === undefined ? 'e.g. 2s' : ms(check.interval)})`,
      });
    }
  });
  return direction;
}

interface RoutesSeen {
  /** Envoy sends the body on some route of this filter. */
  readonly sendsBody: boolean;
  /** Inbound rules whose requests reach a route this filter runs on; undefined when the routes are not in the input. */
  readonly reachedRules: ReadonlySet<string> | undefined;
}

/**
 * Per route: the direction the sidecar will see, the audience, and whether the body is sent where
 * a rule reads it (and only there). Returns whether the filter sends a body on any route.
 */
function checkRoutesAndBody(site: ExtAuthzSite, sidecar: SidecarExpectations, listenerDirection: Direction | undefined | null, add: (finding: EnvoyFinding) => void): RoutesSeen {
  const filterBody = site.config.with_request_body;
  const routeConfig = site.routeConfig;
  if (routeConfig === undefined) {
    // Only the filter is known: judge it as if it ran on every request.
    const readers = sidecar.rules.some((rule) => rule.readsBody) || sidecar.outboundReadsBody;
    if (readers && filterBody === undefined) {
      add({ check: 'request-body', severity: 'error', at: site.at, problem: 'rules read {body.…} but the filter has no with_request_body: Envoy never sends the body, so those calls are denied body_missing', fix: 'set with_request_body: { max_request_bytes: 65536, allow_partial_message: false, pack_as_bytes: true } on the filter' });
    } else if (readers && filterBody?.pack_as_bytes !== true) {
      add(packAsBytesFinding(site.at, sidecar.rules.some((rule) => rule.readsBody && rule.grpc) ? 'error' : 'warning'));
    } else if (!readers && filterBody !== undefined) {
      add({ check: 'body-buffering', severity: 'warning', at: site.at, problem: 'with_request_body is set but no rule reads {body.…}: Envoy holds every request until its whole body arrived, answers 413 above max_request_bytes, and stalls client-streaming gRPC calls, for nothing', fix: 'remove with_request_body, or opt each route out with check_settings.disable_request_body_buffering: true' });
    }
    return { sendsBody: filterBody !== undefined, reachedRules: undefined };
  }
  let sendsBody = false;
  const reached = new Set<string>();
  for (const vhost of routeConfig.virtual_hosts) {
    vhost.routes.forEach((route, index) => {
      const effective = effectiveRoute(site.filter, [routeConfig.typed_per_filter_config, vhost.typed_per_filter_config, route.typed_per_filter_config]);
      if (!effective.enabled) return;
      const routeAt = `${site.routeConfigAt} → virtual_host ${vhost.name} → routes[${index}] (${describeMatch(route.match)})`;
      const direction = routeDirection(effective.contextExtensions, listenerDirection, sidecar, routeAt, add);
      const buffered = effective.withRequestBody !== undefined || (filterBody !== undefined && !effective.disableBuffering);
      sendsBody ||= buffered;
      // The inbound rules whose requests take this route (the first of its virtual host that matches them).
      const arriving = direction === 'outbound' ? [] : sidecar.rules.filter((rule) => firstRouteFor(vhost.routes, rule) === index);
      for (const rule of arriving) reached.add(rule.name);
      if (direction === undefined) return;
      const audience = effective.contextExtensions.audience;
      if (audience === REDACTED) return; // which upstream the route names cannot be told
      if (direction === 'outbound' && audience !== undefined && !sidecar.audiences.has(audience)) {
        add({ check: 'audience', severity: 'error', at: routeAt, problem: `context_extensions.audience is ${audience}, which is not in outbound.upstreams (${[...sidecar.audiences].join(', ') || 'none'}): every call on this route is denied unknown_upstream`, fix: `add { audience: ${audience} } to outbound.upstreams, or correct the route’s audience` });
        return; // every call is denied before its body matters
      }
      const readers =
        direction === 'inbound' ? arriving.filter((rule) => rule.readsBody).map((rule) => ({ name: `inbound rule ${rule.name}`, grpc: rule.grpc }))
        : sidecar.outboundReadsBody && audience !== undefined && sidecar.audiences.has(audience) ? [{ name: 'outbound.onBehalfOf.checks', grpc: false }]
        : [];
      if (readers.length > 0 && !buffered) {
        add({
          check: 'request-body',
          severity: 'error',
          at: routeAt,
          problem: `${readers.map((r) => r.name).join(', ')} read${readers.length === 1 ? 's' : ''} {body.…}, but Envoy sends no body on this route (${filterBody === undefined ? 'the filter has no with_request_body' : 'the route sets disable_request_body_buffering'}): those calls are denied body_missing`,
          fix: filterBody === undefined ? 'set with_request_body { max_request_bytes, pack_as_bytes: true } on the filter, and disable_request_body_buffering on the routes that read no body' : 'remove disable_request_body_buffering from this route’s check_settings',
        });
      } else if (readers.length > 0 && filterBody?.pack_as_bytes !== true) {
        if (effective.withRequestBody?.pack_as_bytes === true) {
          add({ check: 'pack-as-bytes', severity: 'error', at: routeAt, problem: 'pack_as_bytes is set on the route’s with_request_body, which Envoy ignores (envoy#35623: packing comes from the filter): gRPC messages arrive as a UTF-8 string with every non-UTF-8 byte replaced, and are denied body_missing', fix: 'set with_request_body.pack_as_bytes: true on the filter, and keep disable_request_body_buffering on the routes that read no body' });
        } else {
          add(packAsBytesFinding(routeAt, readers.some((r) => r.grpc) ? 'error' : 'warning'));
        }
      } else if (readers.length === 0 && buffered && route.direct_response === undefined) {
        add({
          check: 'body-buffering',
          severity: 'warning',
          at: routeAt,
          problem: 'no rule reads {body.…} of the calls on this route, yet Envoy buffers their body and sends it in the Check: each request waits for its whole body, above max_request_bytes it gets 413, and a client-streaming gRPC call stalls until it ends',
          fix: 'add check_settings: { disable_request_body_buffering: true } to this route’s ExtAuthzPerRoute (or give the calls that read the body a route of their own)',
        });
      }
    });
  }
  return { sendsBody, reachedRules: reached };
}

function packAsBytesFinding(at: string, severity: 'error' | 'warning'): EnvoyFinding {
  return {
    check: 'pack-as-bytes',
    severity,
    at,
    problem: 'the body is sent without pack_as_bytes, as a UTF-8 string in which Envoy replaces every byte that is not UTF-8: JSON reads the same, but a gRPC message with such a byte is denied body_missing',
    fix: 'set with_request_body.pack_as_bytes: true on the filter (a per-route pack_as_bytes is ignored, envoy#35623); Envoy Gateway cannot set it, see docs/integrations.md',
  };
}

/** The direction the sidecar will decide a route's Checks in, reporting what makes it deny them all. */
function routeDirection(extensions: Readonly<Record<string, string>>, listenerDirection: Direction | undefined | null, sidecar: SidecarExpectations, at: string, add: (finding: EnvoyFinding) => void): Direction | undefined {
  const named = extensions.direction;
  // Set, but its value hidden by the admin endpoint: the listener's direction may still be known.
  if (named === REDACTED) return listenerDirection ?? undefined;
  if (named !== undefined && named !== 'inbound' && named !== 'outbound') {
    add({ check: 'direction', severity: 'error', at, problem: `context_extensions.direction is ${named}: every Check on this route is denied unknown_direction`, fix: 'set context_extensions.direction to inbound or outbound' });
    return undefined;
  }
  if (named === undefined && listenerDirection === undefined) {
    add({ check: 'direction', severity: 'error', at, problem: 'no context_extensions.direction on this route, and the sidecar listener it reaches (server.grpcAddress) declares none: every Check is denied missing_direction', fix: 'add check_settings.context_extensions.direction to the route, or point the filter at a server.listeners entry with a direction' });
    return undefined;
  }
  if (named !== undefined && listenerDirection !== undefined && listenerDirection !== null && named !== listenerDirection) {
    add({ check: 'direction', severity: 'error', at, problem: `context_extensions.direction is ${named} but the sidecar listener the filter reaches serves ${listenerDirection} checks only: every Check on this route is denied unknown_direction`, fix: `point this route’s checks at a listener for ${named} (or server.grpcAddress), or drop the route’s direction` });
    return undefined;
  }
  const direction = named ?? listenerDirection ?? undefined;
  if (direction !== undefined && !sidecar.sections.has(direction)) {
    add({ check: 'direction', severity: 'error', at, problem: `the Checks on this route are ${direction}, but the sidecar’s configuration has no ${direction} section: every one is denied`, fix: `add an ${direction} section to the sidecar’s configuration, or correct the route’s direction` });
    return undefined;
  }
  return direction;
}

/** allowed_headers / disallowed_headers against every header the sidecar reads from the requests this filter checks. */
function checkHeaders(site: ExtAuthzSite, sidecar: SidecarExpectations, seen: RoutesSeen, add: (finding: EnvoyFinding) => void): void {
  const allowed = site.config.allowed_headers?.patterns;
  const disallowed = site.config.disallowed_headers?.patterns ?? [];
  const keptOut = (header: string): 'allowed_headers' | 'disallowed_headers' | undefined =>
    allowed !== undefined && !allowed.some((m) => stringMatches(m, header)) ? 'allowed_headers'
    : disallowed.some((m) => stringMatches(m, header)) ? 'disallowed_headers'
    : undefined;
  // One finding per header: the need whose loss breaks the most (an error on every call first).
  const rank = (need: HeaderNeed): number => (need.severity === 'error' ? 4 : 0) + (need.withBody ? 0 : 2) + (need.rule === undefined ? 1 : 0);
  const worst = new Map<string, HeaderNeed>();
  for (const need of sidecar.headers) {
    if (need.withBody && !seen.sendsBody) continue;
    if (need.rule !== undefined && seen.reachedRules !== undefined && !seen.reachedRules.has(need.rule.name)) continue;
    if (keptOut(need.header) === undefined) continue;
    const held = worst.get(need.header);
    if (held === undefined || rank(need) > rank(held)) worst.set(need.header, need);
  }
  for (const need of worst.values()) {
    const list = keptOut(need.header);
    add({
      check: 'allowed-headers',
      severity: need.severity,
      at: `${site.at} → ${list}`,
      problem: `${list} keeps ${need.header} from the sidecar, which ${need.readBy} reads: ${need.withoutIt}`,
      fix: list === 'allowed_headers' ? `add { exact: ${need.header}, ignore_case: true } to allowed_headers.patterns (Envoy Gateway: headersToExtAuth)` : `remove the pattern matching ${need.header} from disallowed_headers`,
    });
  }
}
