/**
 * The subset of Envoy's v3 configuration the Envoy check reads, as zod schemas. Every object is
 * loose: Envoy has hundreds of fields this check does not read, and a field it does not know must
 * never make a valid Envoy configuration look broken. The names are Envoy's proto field names,
 * which is what both a YAML bootstrap and the admin endpoint's /config_dump use.
 *
 * Written here rather than generated: the generated types under src/generated cover the ext_authz
 * service the sidecar serves, not the filter, route and cluster protos, and they describe decoded
 * protobuf, not the YAML/JSON form (durations as "3s", enums as names) read here.
 */
import { z } from 'zod';

/** google.protobuf.Duration in its JSON form ("0.25s") or as an object; milliseconds out. */
const durationSchema = z
  .union([
    z.string().regex(/^\d+(\.\d+)?s$/, 'a duration such as 0.25s'),
    z.looseObject({ seconds: z.union([z.number(), z.string().regex(/^\d+$/)]).optional(), nanos: z.number().optional() }),
  ])
  .transform((value) => (typeof value === 'string' ? Number(value.slice(0, -1)) * 1000 : Number(value.seconds ?? 0) * 1000 + (value.nanos ?? 0) / 1e6));

const uint32Value = z.union([z.number(), z.looseObject({ value: z.number() })]).transform((v) => (typeof v === 'number' ? v : v.value));

const stringMatcherSchema = z.looseObject({
  exact: z.string().optional(),
  prefix: z.string().optional(),
  suffix: z.string().optional(),
  contains: z.string().optional(),
  safe_regex: z.looseObject({ regex: z.string() }).optional(),
  ignore_case: z.boolean().optional(),
});
export type StringMatcher = z.infer<typeof stringMatcherSchema>;

const listStringMatcherSchema = z.looseObject({ patterns: z.array(stringMatcherSchema).default([]) });

const socketAddressSchema = z.looseObject({
  address: z.string(),
  port_value: z.number().optional(),
  named_port: z.string().optional(),
});
const addressSchema = z.looseObject({
  socket_address: socketAddressSchema.optional(),
  pipe: z.looseObject({ path: z.string() }).optional(),
});
export type EnvoyAddress = z.infer<typeof addressSchema>;

const retryPolicySchema = z.looseObject({
  retry_back_off: z.looseObject({ base_interval: durationSchema.optional(), max_interval: durationSchema.optional() }).optional(),
  num_retries: uint32Value.optional(),
  retry_on: z.string().optional(),
});

const grpcServiceSchema = z.looseObject({
  envoy_grpc: z.looseObject({ cluster_name: z.string(), authority: z.string().optional() }).optional(),
  google_grpc: z.looseObject({ target_uri: z.string() }).optional(),
  timeout: durationSchema.optional(),
  retry_policy: retryPolicySchema.optional(),
});

const bufferSettingsSchema = z.looseObject({
  max_request_bytes: uint32Value.optional(),
  allow_partial_message: z.boolean().optional(),
  pack_as_bytes: z.boolean().optional(),
});
export type BufferSettings = z.infer<typeof bufferSettingsSchema>;

/** envoy.extensions.filters.http.ext_authz.v3.ExtAuthz */
export const extAuthzSchema = z.looseObject({
  grpc_service: grpcServiceSchema.optional(),
  http_service: z.looseObject({}).optional(),
  transport_api_version: z.union([z.string(), z.number()]).optional(),
  failure_mode_allow: z.boolean().optional(),
  status_on_error: z.looseObject({ code: z.union([z.number(), z.string()]).optional() }).optional(),
  with_request_body: bufferSettingsSchema.optional(),
  allowed_headers: listStringMatcherSchema.optional(),
  disallowed_headers: listStringMatcherSchema.optional(),
});
export type ExtAuthz = z.infer<typeof extAuthzSchema>;

const checkSettingsSchema = z.looseObject({
  context_extensions: z.record(z.string(), z.string()).optional(),
  disable_request_body_buffering: z.boolean().optional(),
  with_request_body: bufferSettingsSchema.optional(),
});

/** envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute */
export const extAuthzPerRouteSchema = z.looseObject({
  disabled: z.boolean().optional(),
  check_settings: checkSettingsSchema.optional(),
});

const headerMatcherSchema = z.looseObject({
  name: z.string(),
  exact_match: z.string().optional(),
  string_match: stringMatcherSchema.optional(),
});

const routeMatchSchema = z.looseObject({
  prefix: z.string().optional(),
  path: z.string().optional(),
  safe_regex: z.looseObject({ regex: z.string() }).optional(),
  path_separated_prefix: z.string().optional(),
  headers: z.array(headerMatcherSchema).optional(),
  grpc: z.looseObject({}).optional(),
});
export type RouteMatch = z.infer<typeof routeMatchSchema>;

/** typed_per_filter_config values stay unparsed until the filter they belong to is known. */
const perFilterConfigSchema = z.record(z.string(), z.looseObject({ '@type': z.string().optional() })).optional();

const routeSchema = z.looseObject({
  name: z.string().optional(),
  match: routeMatchSchema.default({}),
  route: z.looseObject({ cluster: z.string().optional() }).optional(),
  direct_response: z.looseObject({ status: z.number().optional() }).optional(),
  redirect: z.looseObject({}).optional(),
  typed_per_filter_config: perFilterConfigSchema,
});

const virtualHostSchema = z.looseObject({
  name: z.string().default(''),
  domains: z.array(z.string()).default([]),
  routes: z.array(routeSchema).default([]),
  typed_per_filter_config: perFilterConfigSchema,
});

export const routeConfigurationSchema = z.looseObject({
  name: z.string().default(''),
  virtual_hosts: z.array(virtualHostSchema).default([]),
  typed_per_filter_config: perFilterConfigSchema,
});
export type RouteConfiguration = z.infer<typeof routeConfigurationSchema>;

const typedConfigSchema = z.looseObject({ '@type': z.string().optional() });

const httpFilterSchema = z.looseObject({
  name: z.string(),
  typed_config: typedConfigSchema.optional(),
  disabled: z.boolean().optional(),
});
export type HttpFilter = z.infer<typeof httpFilterSchema>;

/** envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager */
export const httpConnectionManagerSchema = z.looseObject({
  stat_prefix: z.string().default(''),
  route_config: routeConfigurationSchema.optional(),
  rds: z.looseObject({ route_config_name: z.string() }).optional(),
  http_filters: z.array(httpFilterSchema).default([]),
});

const networkFilterSchema = z.looseObject({ name: z.string(), typed_config: typedConfigSchema.optional() });

const filterChainSchema = z.looseObject({ name: z.string().optional(), filters: z.array(networkFilterSchema).default([]) });

export const listenerSchema = z.looseObject({
  name: z.string().default(''),
  address: addressSchema.optional(),
  filter_chains: z.array(filterChainSchema).default([]),
  default_filter_chain: filterChainSchema.optional(),
});
export type Listener = z.infer<typeof listenerSchema>;

const lbEndpointsSchema = z.looseObject({
  lb_endpoints: z.array(z.looseObject({ endpoint: z.looseObject({ address: addressSchema.optional() }).optional() })).default([]),
});
export const clusterLoadAssignmentSchema = z.looseObject({
  cluster_name: z.string().default(''),
  endpoints: z.array(lbEndpointsSchema).default([]),
});
export type ClusterLoadAssignment = z.infer<typeof clusterLoadAssignmentSchema>;

const healthCheckSchema = z.looseObject({
  interval: durationSchema.optional(),
  no_traffic_interval: durationSchema.optional(),
  grpc_health_check: z.looseObject({ service_name: z.string().optional() }).optional(),
  http_health_check: z.looseObject({}).optional(),
  tcp_health_check: z.looseObject({}).optional(),
});

const httpProtocolOptionsSchema = z.looseObject({
  explicit_http_config: z.looseObject({ http2_protocol_options: z.looseObject({}).optional() }).optional(),
  use_downstream_protocol_config: z.looseObject({}).optional(),
  auto_config: z.looseObject({}).optional(),
});

export const clusterSchema = z.looseObject({
  name: z.string(),
  type: z.string().optional(),
  load_assignment: clusterLoadAssignmentSchema.optional(),
  health_checks: z.array(healthCheckSchema).default([]),
  http2_protocol_options: z.looseObject({}).optional(),
  typed_extension_protocol_options: z.record(z.string(), httpProtocolOptionsSchema).optional(),
});
export type Cluster = z.infer<typeof clusterSchema>;

/** envoy.extensions.filters.http.health_check.v3.HealthCheck: Envoy's readiness, if it has one. */
export const healthCheckFilterSchema = z.looseObject({
  cluster_min_healthy_percentages: z.record(z.string(), z.unknown()).optional(),
});

export const bootstrapSchema = z.looseObject({
  static_resources: z
    .looseObject({
      listeners: z.array(z.unknown()).default([]),
      clusters: z.array(z.unknown()).default([]),
    })
    .optional(),
});
