/**
 * What the sidecar's configuration asks of the Envoy in front of it: where it listens and for which
 * direction, how long a decision may take, which audiences it mints for, which rules read the
 * request body and which headers anything reads. Derived once from a validated Config, so the Envoy
 * analysis never reads the sidecar's schema itself.
 */
import type { Config } from '../config/schema.js';
import type { Direction } from '../core/request-context.js';
import { compilePermissionCheck } from '../rules/permission-check-spec.js';
import type { PermissionCheckSpec } from '../rules/permission-check-spec.js';
import { TemplateError } from '../rules/template.js';
import type { TemplateRef } from '../rules/template.js';

export interface SidecarListener {
  /** The key that declares it, e.g. server.grpcAddress or server.listeners[1]. */
  readonly key: string;
  readonly host: string;
  readonly port: number;
  /** Undefined on server.grpcAddress: the route's context_extensions.direction decides there. */
  readonly direction: Direction | undefined;
}

/** An inbound rule, with a path its requests take, to find the Envoy route they arrive on. */
export interface RuleRequests {
  readonly name: string;
  readonly grpc: boolean;
  readonly samplePath: string;
  /** Undefined: any method. */
  readonly methods: readonly string[] | undefined;
  /** Its checks read `{body.…}`. */
  readonly readsBody: boolean;
}

/** A request header the sidecar reads, what reads it and what happens when Envoy does not send it. */
export interface HeaderNeed {
  readonly header: string;
  readonly readBy: string;
  readonly withoutIt: string;
  /** A header only logs or tracing use is a warning; one a decision depends on is an error. */
  readonly severity: 'error' | 'warning';
  /** Read only from requests whose body is sent: matters only where the filter sends bodies. */
  readonly withBody: boolean;
  /** Read by this inbound rule alone: matters only where its requests arrive. */
  readonly rule: RuleRequests | undefined;
}

export interface SidecarExpectations {
  readonly listeners: readonly SidecarListener[];
  readonly sections: ReadonlySet<Direction>;
  readonly deadlineMs: number;
  readonly audiences: ReadonlySet<string>;
  readonly rules: readonly RuleRequests[];
  /** True when the on-behalf-of checks read `{body.…}` of outbound calls. */
  readonly outboundReadsBody: boolean;
  readonly headers: readonly HeaderNeed[];
}

function hostPort(address: string): { host: string; port: number } {
  const at = address.lastIndexOf(':');
  return { host: address.slice(0, at).replace(/^\[|\]$/g, ''), port: Number(address.slice(at + 1)) };
}

function referencesOf(checks: readonly PermissionCheckSpec[], where: string): TemplateRef[] {
  return checks.flatMap((check, i) => {
    try {
      return compilePermissionCheck(check, `${where}.checks[${i}]`).references;
    } catch (error) {
      // validate reports a template that does not compile on its own; here it reads nothing.
      if (error instanceof TemplateError) return [];
      throw error;
    }
  });
}

/** A concrete path the rule's path template matches: each {param} and ** filled with one segment. */
function samplePathOf(match: NonNullable<Config['inbound']>['rules'][number]['match']): string {
  if (match.grpc) return `/${match.grpc.service}/${match.grpc.method ?? 'AnyMethod'}`;
  return (match.http?.path ?? '/').replace(/\{[^}]*\}/g, 'x').replace(/\*\*/g, 'x');
}

export function sidecarExpectations(config: Config): SidecarExpectations {
  const listeners: SidecarListener[] = [{ key: 'server.grpcAddress', ...hostPort(config.server.grpcAddress), direction: undefined }];
  config.server.listeners?.forEach((listener, i) => listeners.push({ key: `server.listeners[${i}]`, ...hostPort(listener.address), direction: listener.direction }));

  const sections = new Set<Direction>();
  if (config.inbound) sections.add('inbound');
  if (config.outbound) sections.add('outbound');

  const headers: HeaderNeed[] = [];
  const need = (header: string, readBy: string, withoutIt: string, severity: HeaderNeed['severity'] = 'error', withBody = false, rule?: RuleRequests): void => {
    headers.push({ header: header.toLowerCase(), readBy, withoutIt, severity, withBody, rule });
  };
  const tokenRead = (config.inbound?.rules ?? []).some((rule) => rule.auth !== 'none') || config.inbound?.default === 'token' || config.outbound !== undefined;
  if (tokenRead) need('authorization', 'every rule that needs a token (issuers verify the bearer token in it)', 'every such call is denied missing_token');

  const rules: RuleRequests[] = [];
  config.inbound?.rules.forEach((rule, i) => {
    const where = `inbound.rules[${i}] (${rule.name})`;
    const references = referencesOf(rule.checks, `inbound.rules[${i}]`);
    const requests: RuleRequests = {
      name: rule.name,
      grpc: rule.match.grpc !== undefined,
      samplePath: samplePathOf(rule.match),
      methods: rule.match.grpc ? ['POST'] : rule.match.http?.methods,
      readsBody: references.some((ref) => ref.source === 'body'),
    };
    rules.push(requests);
    for (const ref of references) {
      if (ref.source === 'header') need(ref.name, `${where} {header.${ref.name}}`, 'its checks cannot be built: every call it matches is denied invalid_check_input', 'error', false, requests);
    }
    for (const name of Object.keys(rule.match.headers ?? {})) need(name, `${where} match.headers`, 'the rule never matches: its calls fall to inbound.default', 'error', false, requests);
    if (rule.match.grpc) need('content-type', `${where} match.grpc (a gRPC call is told by content-type application/grpc)`, 'the rule never matches: its calls fall to inbound.default', 'error', false, requests);
  });
  const bodyRules = rules.filter((rule) => rule.readsBody);

  const obo = config.outbound?.onBehalfOf;
  let outboundReadsBody = false;
  if (config.outbound && obo && obo.allowedCallers.length > 0) {
    need(obo.header, 'outbound.onBehalfOf.header', 'on-behalf-of calls go out with the service token alone, never the user’s');
    const references = referencesOf(obo.checks, 'outbound.onBehalfOf');
    outboundReadsBody = references.some((ref) => ref.source === 'body');
    for (const ref of references) {
      if (ref.source === 'header') need(ref.name, `outbound.onBehalfOf.checks {header.${ref.name}}`, 'every on-behalf-of call is denied invalid_check_input');
    }
  }
  if (bodyRules.length > 0 || outboundReadsBody) {
    need('content-type', 'rules that read {body.…} (gRPC or JSON is told by content-type)', 'their bodies cannot be decoded: denied body_missing', 'error', true);
    if (bodyRules.some((rule) => rule.grpc) || outboundReadsBody) {
      need('grpc-encoding', 'rules that read {body.…} of gRPC calls (how a compressed message is inflated)', 'a compressed message is denied body_malformed', 'warning', true);
    }
    need('content-length', 'rules that read {body.…} (a body shorter than content-length is refused as cut)', 'a body cut short is not told from a whole one', 'warning', true);
  }
  need('x-request-id', 'the decision log (ties each decision to the request)', 'decision logs cannot be matched to Envoy’s access log', 'warning');

  return {
    listeners,
    sections,
    deadlineMs: config.spicedb.deadlineMs,
    audiences: new Set(config.outbound?.upstreams.map((upstream) => upstream.audience) ?? []),
    rules,
    outboundReadsBody,
    headers,
  };
}
