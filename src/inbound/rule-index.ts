/**
 * Rules compiled into indexes, so finding the rule for a request costs about the same with ten
 * rules as with ten thousand: gRPC calls are two Map lookups (service, then method); HTTP paths
 * walk a segment trie. Only rules that share the exact same route are scanned, in config order,
 * for their host, header and method conditions.
 *
 * Precedence: a gRPC rule beats an HTTP rule for gRPC calls; in the trie a literal segment beats
 * {param}, which beats `**` (with backtracking when the more specific branch has no rule that
 * fits); among rules on the same route the first in the file wins.
 */
import type { DecisionFacts } from '../core/decision.js';
import type { CompiledRequirement } from '../rules/conditions.js';
import type { RequestContext } from '../core/request-context.js';
import type { BodyReader } from '../body/body-reader.js';
import type { CompiledPermissionCheck } from '../rules/permission-check-spec.js';
import type { PathSegment } from './path-template.js';

export interface CompiledRule {
  readonly name: string;
  /** Position in the config file; lower wins among rules on one route. */
  readonly index: number;
  readonly auth: 'none' | 'token' | 'checks';
  readonly checks: readonly CompiledPermissionCheck[];
  /** Reads the message fields the checks use; undefined when they read none (the body is never touched). */
  readonly body: BodyReader | undefined;
  readonly dryRun: boolean;
  /** What every decision of this rule says of it (its name, and dry-run when it is). */
  readonly facts: DecisionFacts;
  readonly audience: string | undefined;
  readonly issuers: ReadonlySet<string> | undefined;
  readonly issuerKinds: ReadonlySet<string> | undefined;
  readonly host: { readonly exact: string } | { readonly suffix: string } | undefined;
  readonly headers: ReadonlyArray<readonly [name: string, value: string]>;
  /** The rule's `require` (scopes, claim conditions), checked once the token is accepted. */
  readonly requirement: CompiledRequirement | undefined;
}

/** What the inbound core asks of its rules; a RuleIndex, or a decorator around one (tracing). */
export interface RuleMatcher {
  match(request: RequestContext): RuleMatch | undefined;
}

export interface RuleMatch {
  readonly rule: CompiledRule;
  readonly pathParams: Readonly<Record<string, string>>;
}

const NO_PARAMS: Readonly<Record<string, string>> = Object.freeze({});

function conditionsHold(rule: CompiledRule, request: RequestContext): boolean {
  const host = rule.host;
  if (host !== undefined) {
    if ('exact' in host ? request.authority !== host.exact : !request.authority.endsWith(host.suffix)) return false;
  }
  for (const [name, value] of rule.headers) if (request.headers.get(name) !== value) return false;
  return true;
}

function firstMatching(rules: readonly CompiledRule[] | undefined, request: RequestContext): CompiledRule | undefined {
  if (rules === undefined) return undefined;
  for (const rule of rules) if (conditionsHold(rule, request)) return rule;
  return undefined;
}

// ---------------------------------------------------------------- gRPC

class GrpcIndex {
  private readonly methods = new Map<string, Map<string, CompiledRule[]>>();
  private readonly wholeService = new Map<string, CompiledRule[]>();

  add(rule: CompiledRule, service: string, method: string | undefined): void {
    if (method === undefined) {
      push(this.wholeService, service, rule);
      return;
    }
    let byMethod = this.methods.get(service);
    if (!byMethod) this.methods.set(service, (byMethod = new Map()));
    push(byMethod, method, rule);
  }

  match(request: RequestContext): CompiledRule | undefined {
    const grpc = request.grpc;
    if (grpc === undefined) return undefined;
    const exact = firstMatching(this.methods.get(grpc.service)?.get(grpc.method), request);
    const service = firstMatching(this.wholeService.get(grpc.service), request);
    if (exact === undefined) return service;
    return service === undefined || exact.index < service.index ? exact : service;
  }
}

function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

// ---------------------------------------------------------------- HTTP

interface Route {
  readonly rule: CompiledRule;
  /** Name of each captured {param}, in path order. */
  readonly paramNames: readonly string[];
}

class Leaf {
  readonly byMethod = new Map<string, Route[]>();
  readonly anyMethod: Route[] = [];

  pick(request: RequestContext): Route | undefined {
    const specific = firstRoute(this.byMethod.get(request.method), request);
    const any = firstRoute(this.anyMethod, request);
    if (specific === undefined) return any;
    return any === undefined || specific.rule.index < any.rule.index ? specific : any;
  }
}

function firstRoute(routes: readonly Route[] | undefined, request: RequestContext): Route | undefined {
  if (routes === undefined) return undefined;
  for (const route of routes) if (conditionsHold(route.rule, request)) return route;
  return undefined;
}

class TrieNode {
  readonly literal = new Map<string, TrieNode>();
  param: TrieNode | undefined;
  leaf: Leaf | undefined;
  rest: Leaf | undefined;
}

/**
 * A separator inside one segment: an escaped slash or backslash (%2F, %5C) decodes to one, and a
 * raw backslash is one to some apps. Envoy forwards them as they are unless
 * `path_with_escaped_slashes_action` says otherwise, and many apps decode before they route, so
 * `/v1/clouds/a%2Fadmin/x` may reach the app as `/v1/clouds/a/admin/x`. A {param} bound to
 * `a/admin` would authorize one route while the app serves another: such a segment binds no
 * parameter.
 */
const SEPARATOR = /[/\\]/;

/** A path segment as a {param} value: percent-decoded, or undefined when it is not one segment's value. */
function decodeSegment(segment: string): string | undefined {
  let value = segment;
  if (segment.includes('%')) {
    try {
      value = decodeURIComponent(segment);
    } catch {
      return undefined;
    }
  }
  return SEPARATOR.test(value) ? undefined : value;
}

class HttpIndex {
  private readonly root = new TrieNode();

  add(rule: CompiledRule, segments: readonly PathSegment[], params: readonly string[], methods: readonly string[] | undefined): void {
    let node = this.root;
    let leaf: Leaf | undefined;
    for (const segment of segments) {
      if (segment.kind === 'literal') {
        let next = node.literal.get(segment.value);
        if (!next) node.literal.set(segment.value, (next = new TrieNode()));
        node = next;
      } else if (segment.kind === 'param') {
        node = node.param ??= new TrieNode();
      } else {
        leaf = node.rest ??= new Leaf();
      }
    }
    leaf ??= node.leaf ??= new Leaf();
    const route: Route = { rule, paramNames: params };
    if (methods === undefined) leaf.anyMethod.push(route);
    else for (const method of methods) push(leaf.byMethod, method, route);
  }

  match(request: RequestContext): RuleMatch | undefined {
    const segments = request.path.slice(1).split('/');
    const captured: string[] = [];
    const route = this.walk(this.root, segments, 0, captured, request);
    if (route === undefined) return undefined;
    if (route.paramNames.length === 0) return { rule: route.rule, pathParams: NO_PARAMS };
    const pathParams: Record<string, string> = {};
    route.paramNames.forEach((name, i) => {
      pathParams[name] = captured[i] as string;
    });
    return { rule: route.rule, pathParams };
  }

  private walk(node: TrieNode, segments: readonly string[], i: number, captured: string[], request: RequestContext): Route | undefined {
    if (i === segments.length) {
      return node.leaf?.pick(request) ?? node.rest?.pick(request);
    }
    const segment = segments[i] as string;
    const literal = node.literal.get(segment);
    if (literal !== undefined) {
      const found = this.walk(literal, segments, i + 1, captured, request);
      if (found !== undefined) return found;
    }
    if (node.param !== undefined && segment !== '') {
      const value = decodeSegment(segment);
      if (value !== undefined) {
        captured.push(value);
        const found = this.walk(node.param, segments, i + 1, captured, request);
        if (found !== undefined) return found;
        captured.pop();
      }
    }
    return node.rest?.pick(request);
  }
}

// ---------------------------------------------------------------- both

export type RouteSpec =
  | { readonly kind: 'grpc'; readonly service: string; readonly method: string | undefined }
  | { readonly kind: 'http'; readonly segments: readonly PathSegment[]; readonly params: readonly string[]; readonly methods: readonly string[] | undefined };

export class RuleIndex implements RuleMatcher {
  private readonly grpc = new GrpcIndex();
  private readonly http = new HttpIndex();

  add(rule: CompiledRule, route: RouteSpec): void {
    if (route.kind === 'grpc') this.grpc.add(rule, route.service, route.method);
    else this.http.add(rule, route.segments, route.params, route.methods);
  }

  match(request: RequestContext): RuleMatch | undefined {
    const grpcRule = this.grpc.match(request);
    if (grpcRule !== undefined) return { rule: grpcRule, pathParams: NO_PARAMS };
    return this.http.match(request);
  }
}
