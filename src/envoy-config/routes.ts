/**
 * Which route an ext_authz filter applies to, with which per-route settings, and which route a
 * rule's requests take. Envoy's own merging, narrowed to what the check reads: route table, virtual
 * host and route may each carry a per-filter config; the most specific one says whether the filter
 * runs and which check_settings apply, and context_extensions are merged key by key, the more
 * specific winning.
 */
import { extAuthzPerRouteSchema } from './envoy-schema.js';
import type { BufferSettings, HttpFilter, RouteMatch } from './envoy-schema.js';
import type { RuleRequests } from './sidecar-expectations.js';

const FILTER_CONFIG_TYPE = 'type.googleapis.com/envoy.config.route.v3.FilterConfig';

type PerFilter = Readonly<Record<string, { readonly '@type'?: string | undefined } & Record<string, unknown>>> | undefined;

interface Layer {
  readonly disabled: boolean;
  readonly contextExtensions: Readonly<Record<string, string>>;
  readonly disableBuffering: boolean | undefined;
  readonly withRequestBody: BufferSettings | undefined;
  readonly hasCheckSettings: boolean;
}

export interface EffectiveRoute {
  readonly enabled: boolean;
  readonly contextExtensions: Readonly<Record<string, string>>;
  readonly disableBuffering: boolean;
  /** The route's own with_request_body (Envoy 1.29+): its size and partial settings, never its packing. */
  readonly withRequestBody: BufferSettings | undefined;
}

/** One level's config for `filterName`, unwrapping envoy.config.route.v3.FilterConfig. */
function layerOf(perFilter: PerFilter, filterName: string): Layer | undefined {
  const raw = perFilter?.[filterName];
  if (raw === undefined) return undefined;
  let config: unknown = raw;
  let disabled = false;
  if (raw['@type'] === FILTER_CONFIG_TYPE) {
    disabled = raw.disabled === true;
    config = raw.config ?? {};
  }
  const parsed = extAuthzPerRouteSchema.safeParse(config);
  const perRoute = parsed.success ? parsed.data : {};
  const settings = perRoute.check_settings;
  return {
    disabled: disabled || perRoute.disabled === true,
    contextExtensions: settings?.context_extensions ?? {},
    disableBuffering: settings?.disable_request_body_buffering,
    withRequestBody: settings?.with_request_body,
    hasCheckSettings: settings !== undefined,
  };
}

export function effectiveRoute(filter: HttpFilter, levels: readonly PerFilter[]): EffectiveRoute {
  const layers = levels.map((level) => layerOf(level, filter.name)).filter((layer): layer is Layer => layer !== undefined);
  const mostSpecific = layers.at(-1);
  // A filter disabled in the chain runs only where a route (or its host or table) configures it.
  const enabled = mostSpecific === undefined ? filter.disabled !== true : !mostSpecific.disabled;
  const settings = [...layers].reverse().find((layer) => layer.hasCheckSettings);
  return {
    enabled,
    contextExtensions: Object.assign({}, ...layers.map((layer) => layer.contextExtensions)) as Record<string, string>,
    disableBuffering: settings?.disableBuffering === true,
    withRequestBody: settings?.withRequestBody,
  };
}

export function describeMatch(match: RouteMatch): string {
  const path =
    match.path !== undefined ? `path ${match.path}`
    : match.prefix !== undefined ? `prefix ${match.prefix}`
    : match.path_separated_prefix !== undefined ? `path_separated_prefix ${match.path_separated_prefix}`
    : match.safe_regex !== undefined ? `safe_regex ${match.safe_regex.regex}`
    : 'match';
  const method = methodOf(match);
  return method === undefined ? path : `${path}, ${method}`;
}

function methodOf(match: RouteMatch): string | undefined {
  const header = match.headers?.find((h) => h.name === ':method');
  return header?.exact_match ?? header?.string_match?.exact;
}

/**
 * Whether a request of `rule` can take this route. Header matchers other than :method are taken
 * as matching: the check cannot know a request's headers, and a false "this route" is safer than
 * a missed one (a finding names the route, so a user can tell).
 */
function routeTakes(match: RouteMatch, rule: RuleRequests): boolean {
  const path = rule.samplePath;
  let pathMatches: boolean;
  if (match.path !== undefined) pathMatches = match.path === path;
  else if (match.prefix !== undefined) pathMatches = path.startsWith(match.prefix);
  else if (match.path_separated_prefix !== undefined) pathMatches = path === match.path_separated_prefix || path.startsWith(`${match.path_separated_prefix}/`);
  else if (match.safe_regex !== undefined) {
    try {
      pathMatches = new RegExp(`^(?:${match.safe_regex.regex})$`).test(path);
    } catch {
      pathMatches = true; // RE2 syntax JavaScript does not read: assume it may match
    }
  } else pathMatches = false;
  if (!pathMatches) return false;
  if (match.grpc !== undefined && !rule.grpc) return false;
  const method = methodOf(match);
  return method === undefined || rule.methods === undefined || rule.methods.includes(method);
}

/** The index of the first route of the virtual host a request of `rule` takes, or -1. */
export function firstRouteFor(routes: readonly { readonly match: RouteMatch }[], rule: RuleRequests): number {
  return routes.findIndex((route) => routeTakes(route.match, rule));
}
