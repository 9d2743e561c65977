/**
 * Whatever Envoy configuration the user hands over (a bootstrap, an admin /config_dump, a listener,
 * or an ext_authz filter on its own) → one view of its listeners, clusters, route tables and
 * endpoints. Pure: a parsed YAML/JSON value in, the view out; EnvoyConfigError for input that is
 * not any of those shapes, naming where it went wrong.
 */
import type { z } from 'zod';
import {
  bootstrapSchema,
  clusterLoadAssignmentSchema,
  clusterSchema,
  extAuthzSchema,
  listenerSchema,
  routeConfigurationSchema,
} from './envoy-schema.js';
import type { Cluster, ClusterLoadAssignment, HttpFilter, Listener, RouteConfiguration } from './envoy-schema.js';

export const EXT_AUTHZ_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz';

type EnvoyInputKind = 'bootstrap' | 'config_dump' | 'listener' | 'filter';

export interface EnvoyConfigView {
  readonly kind: EnvoyInputKind;
  readonly listeners: readonly Listener[];
  /** Undefined when the input holds no clusters at all (a listener or filter on its own). */
  readonly clusters: ReadonlyMap<string, Cluster> | undefined;
  /** Route tables delivered by RDS, by name (config_dump only). */
  readonly routeConfigs: ReadonlyMap<string, RouteConfiguration>;
  /** Endpoints delivered by EDS, by cluster name (config_dump with include_eds only). */
  readonly endpoints: ReadonlyMap<string, ClusterLoadAssignment>;
  /** ext_authz filters given on their own, outside any listener. */
  readonly looseFilters: readonly HttpFilter[];
}

export class EnvoyConfigError extends Error {}

type Json = Record<string, unknown>;

const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);

/** Parses `value` or throws EnvoyConfigError naming where (`where` plus the failing key path) and why. */
export function parseAs<S extends z.ZodType>(schema: S, value: unknown, where: string): z.infer<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const at = issue && issue.path.length > 0 ? `.${issue.path.join('.')}` : '';
  throw new EnvoyConfigError(`${where}${at}: ${issue?.message ?? 'not valid'}`);
}

function byName<T extends { readonly name: string }>(items: readonly T[]): Map<string, T> {
  return new Map(items.map((item) => [item.name, item]));
}

function fromBootstrap(value: unknown): EnvoyConfigView {
  const bootstrap = parseAs(bootstrapSchema, value, 'bootstrap');
  const statics = bootstrap.static_resources;
  const listeners = (statics?.listeners ?? []).map((l, i) => parseAs(listenerSchema, l, `static_resources.listeners[${i}]`));
  const clusters = (statics?.clusters ?? []).map((c, i) => parseAs(clusterSchema, c, `static_resources.clusters[${i}]`));
  return { kind: 'bootstrap', listeners, clusters: byName(clusters), routeConfigs: new Map(), endpoints: new Map(), looseFilters: [] };
}

const list = (value: unknown): unknown[] => (Array.isArray(value) ? value : []);

/** Envoy's admin /config_dump: one entry per config type, static and dynamic resources in each. */
function fromConfigDump(configs: unknown[]): EnvoyConfigView {
  const listeners: Listener[] = [];
  const clusters: Cluster[] = [];
  const routeConfigs: RouteConfiguration[] = [];
  const endpoints: ClusterLoadAssignment[] = [];
  configs.forEach((entry, i) => {
    if (!isObject(entry)) return;
    const type = String(entry['@type'] ?? '');
    const where = `configs[${i}]`;
    if (type.endsWith('.ListenersConfigDump')) {
      list(entry.static_listeners).forEach((l, j) => {
        if (isObject(l)) listeners.push(parseAs(listenerSchema, l.listener, `${where}.static_listeners[${j}].listener`));
      });
      list(entry.dynamic_listeners).forEach((l, j) => {
        // A listener still warming has only warming_state; its active_state is what serves traffic.
        const active = isObject(l) && isObject(l.active_state) ? l.active_state.listener : undefined;
        if (active !== undefined) listeners.push(parseAs(listenerSchema, active, `${where}.dynamic_listeners[${j}].active_state.listener`));
      });
    } else if (type.endsWith('.ClustersConfigDump')) {
      for (const key of ['static_clusters', 'dynamic_active_clusters']) {
        list(entry[key]).forEach((c, j) => {
          if (isObject(c)) clusters.push(parseAs(clusterSchema, c.cluster, `${where}.${key}[${j}].cluster`));
        });
      }
    } else if (type.endsWith('.RoutesConfigDump')) {
      for (const key of ['static_route_configs', 'dynamic_route_configs']) {
        list(entry[key]).forEach((r, j) => {
          if (isObject(r)) routeConfigs.push(parseAs(routeConfigurationSchema, r.route_config, `${where}.${key}[${j}].route_config`));
        });
      }
    } else if (type.endsWith('.EndpointsConfigDump')) {
      for (const key of ['static_endpoint_configs', 'dynamic_endpoint_configs']) {
        list(entry[key]).forEach((e, j) => {
          if (isObject(e)) endpoints.push(parseAs(clusterLoadAssignmentSchema, e.endpoint_config, `${where}.${key}[${j}].endpoint_config`));
        });
      }
    }
  });
  return {
    kind: 'config_dump',
    listeners,
    clusters: byName(clusters),
    routeConfigs: new Map(routeConfigs.map((r) => [r.name, r])),
    endpoints: new Map(endpoints.map((e) => [e.cluster_name, e])),
    looseFilters: [],
  };
}

function snippet(kind: EnvoyInputKind, listeners: Listener[], looseFilters: HttpFilter[]): EnvoyConfigView {
  return { kind, listeners, clusters: undefined, routeConfigs: new Map(), endpoints: new Map(), looseFilters };
}

/** A proto field name in its JSON (lowerCamelCase) form; a map key with a dot or an underscore is left alone. */
const CAMEL_FIELD = /^[a-z][a-z0-9]*(?:[A-Z][a-z0-9]*)+$/;

/**
 * Envoy reads proto fields in either spelling (`socket_address`, `socketAddress`), and tools write
 * the camelCase one (`egctl x translate`); this check reads snake_case, so camelCase field names
 * are rewritten. Keys with a dot or an underscore (filter names, `HttpProtocolOptions` type URLs,
 * cluster names) are map keys, never fields, and stay as written.
 */
function snakeCaseFields(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(snakeCaseFields);
  if (!isObject(value)) return value;
  return Object.fromEntries(Object.entries(value).map(([key, inner]) => [CAMEL_FIELD.test(key) ? key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`) : key, snakeCaseFields(inner)]));
}

/** Recognises the input's shape; throws EnvoyConfigError when it is none Envoy uses for ext_authz. */
export function collectEnvoyConfig(input: unknown): EnvoyConfigView {
  const value = snakeCaseFields(input);
  if (Array.isArray(value)) {
    if (value.every((item) => isObject(item) && 'filter_chains' in item)) {
      return snippet('listener', value.map((l, i) => parseAs(listenerSchema, l, `[${i}]`)), []);
    }
    throw new EnvoyConfigError('a list must hold Envoy listeners (each with filter_chains)');
  }
  if (!isObject(value)) throw new EnvoyConfigError('expected an Envoy bootstrap, a /config_dump, a listener or an ext_authz filter; found no object');
  if (Array.isArray(value.configs)) return fromConfigDump(value.configs);
  if ('static_resources' in value || 'dynamic_resources' in value || 'admin' in value) return fromBootstrap(value);
  if ('filter_chains' in value) return snippet('listener', [parseAs(listenerSchema, value, 'listener')], []);
  if (value['@type'] === EXT_AUTHZ_TYPE) {
    parseAs(extAuthzSchema, value, 'ext_authz');
    return snippet('filter', [], [{ name: 'envoy.filters.http.ext_authz', typed_config: value }]);
  }
  if (isObject(value.typed_config) && value.typed_config['@type'] === EXT_AUTHZ_TYPE) {
    parseAs(extAuthzSchema, value.typed_config, 'typed_config');
    return snippet('filter', [], [{ name: typeof value.name === 'string' ? value.name : 'envoy.filters.http.ext_authz', typed_config: value.typed_config }]);
  }
  throw new EnvoyConfigError(
    'expected an Envoy bootstrap (static_resources), a /config_dump (configs), a listener (filter_chains) or an ext_authz filter (typed_config of @type envoy.extensions.filters.http.ext_authz.v3.ExtAuthz)',
  );
}
