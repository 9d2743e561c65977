/**
 * Turns the validated `inbound` config into a RuleIndex, once, at load. Every template, path and
 * check is compiled here so that a mistake fails start-up with its location instead of failing
 * requests later.
 */
import { BodyConfigError } from '../body/body-reader.js';
import { compilePermissionCheck } from '../rules/permission-check-spec.js';
import { bodyPathsOf, ruleBodyReader } from '../rules/body-bindings.js';
import type { MessageTypes } from '../rules/body-bindings.js';
import { TemplateError } from '../rules/template.js';
import type { CompiledPermissionCheck } from '../rules/permission-check-spec.js';
import { compileRequirement } from '../rules/conditions.js';
import type { InboundRule } from './config.js';
import { parsePathTemplate, PathTemplateError } from './path-template.js';
import { RuleIndex } from './rule-index.js';
import type { CompiledRule, RouteSpec } from './rule-index.js';

export class RuleConfigError extends Error {}

function routeOf(rule: InboundRule, where: string): RouteSpec {
  const { grpc, http } = rule.match;
  if (grpc !== undefined) return { kind: 'grpc', service: grpc.service, method: grpc.method };
  // Stryker disable next-line StringLiteral: unreachable; the schema already refuses a match with neither grpc nor http
  if (http === undefined) throw new RuleConfigError(`${where}.match: needs grpc or http`);
  try {
    const { segments, params } = parsePathTemplate(http.path);
    return { kind: 'http', segments, params, methods: http.methods };
  } catch (error) {
    if (error instanceof PathTemplateError) throw new RuleConfigError(`${where}.match.http.path: ${error.message}`);
    throw error;
  }
}

export function compileRules(rules: readonly InboundRule[], messages: MessageTypes): RuleIndex {
  const index = new RuleIndex();
  const names = new Set<string>();
  rules.forEach((rule, position) => {
    const where = `inbound.rules[${position}] (${rule.name})`;
    if (names.has(rule.name)) throw new RuleConfigError(`${where}: duplicate rule name`);
    names.add(rule.name);
    const route = routeOf(rule, where);
    const params = route.kind === 'http' ? new Set(route.params) : new Set<string>();
    const checks: CompiledPermissionCheck[] = rule.checks.map((spec, i) => {
      const checkWhere = `${where}.checks[${i}]`;
      let check: CompiledPermissionCheck;
      try {
        check = compilePermissionCheck(spec, checkWhere);
      } catch (error) {
        if (error instanceof TemplateError) throw new RuleConfigError(error.message);
        throw error;
      }
      for (const ref of check.references) {
        if (ref.source === 'path' && !params.has(ref.name)) {
          throw new RuleConfigError(`${checkWhere}: {path.${ref.name}} is not a parameter of this rule's path`);
        }
      }
      return check;
    });
    let body;
    try {
      body = ruleBodyReader(route, bodyPathsOf(checks), messages, where);
    } catch (error) {
      if (error instanceof BodyConfigError) throw new RuleConfigError(error.message);
      throw error;
    }
    const host = rule.match.host;
    const compiled: CompiledRule = {
      name: rule.name,
      index: position,
      auth: rule.auth,
      checks,
      body,
      dryRun: rule.dryRun,
      facts: Object.freeze(rule.dryRun ? { rule: rule.name, dryRun: true } : { rule: rule.name }),
      audience: rule.audience,
      issuers: rule.issuers ? new Set(rule.issuers) : undefined,
      issuerKinds: rule.issuerKinds ? new Set(rule.issuerKinds) : undefined,
      host: host === undefined ? undefined : host.startsWith('*.') ? { suffix: host.slice(1) } : { exact: host },
      headers: Object.entries(rule.match.headers ?? {}).map(([name, value]) => [name.toLowerCase(), value] as const),
      // Read only after the rule matched: conditions gate a rule and never select it.
      requirement: rule.require === undefined ? undefined : compileRequirement(rule.require),
    };
    index.add(compiled, route);
  });
  return index;
}

