/**
 * The inbound decision: find the rule, verify the caller's token, run the rule's SpiceDB checks,
 * and answer with verified identity headers. Pure over its ports (TokenVerifier,
 * PermissionChecker): no I/O of its own, so it is tested with fakes and reused as it is.
 * Fails closed everywhere: any unexpected error is a deny, never an allow or a throw.
 */
import { readBearer } from '../core/bearer.js';
import { allow, deny } from '../core/decision.js';
import type { CheckRecord, Decision, DecisionFacts, HeaderList, Reason } from '../core/decision.js';
import { IDENTITY_HEADER_NAMES, IDENTITY_HEADERS } from '../core/identity-headers.js';
import type { Authorizer, Consistency, PermissionAnswer, PermissionChecker, PermissionQuery, TokenVerifier, VerifiedToken } from '../core/ports.js';
import type { RequestContext } from '../core/request-context.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { formatObject, FULLY_CONSISTENT, isBuildError, MINIMIZE_LATENCY } from '../rules/check-spec.js';
import { compileRules } from './compile-rules.js';
import type { InboundConfig } from './config.js';
import type { CompiledRule, RuleIndex } from './rule-index.js';

export interface InboundAuthorizerDeps {
  verifier: TokenVerifier;
  checker: PermissionChecker;
  metrics: Metrics;
  logger: Logger;
  maxTokenBytes: number;
}

const CHALLENGE_MISSING: HeaderList = Object.freeze([['www-authenticate', 'Bearer realm="jwtauth"'] as const]);
const CHALLENGE_INVALID: HeaderList = Object.freeze([['www-authenticate', 'Bearer realm="jwtauth", error="invalid_token"'] as const]);
/** Control characters would make Envoy reject the header (or split it); such a subject is refused. */
const UNSAFE_HEADER_VALUE = /[\u0000-\u0008\u000a-\u001f\u007f]/;

type Outcome = { readonly ok: true } | { readonly ok: false; readonly reason: Reason; readonly detail?: string };

function tokenFacts(token: VerifiedToken, facts: DecisionFacts): DecisionFacts {
  facts.subject = token.subject;
  facts.subjectType = token.subjectType;
  facts.issuer = token.issuerName;
  facts.tokenKind = token.issuerKind;
  return facts;
}

function resultText(answer: PermissionAnswer): string {
  return answer.outcome === 'error' ? answer.reason : answer.outcome;
}

export class InboundAuthorizer implements Authorizer {
  private readonly rules: RuleIndex;
  private readonly defaultConsistency: Consistency;

  constructor(
    private readonly config: NonNullable<InboundConfig>,
    private readonly deps: InboundAuthorizerDeps,
  ) {
    this.rules = compileRules(config.rules);
    this.defaultConsistency = config.consistency === 'fully_consistent' ? FULLY_CONSISTENT : MINIMIZE_LATENCY;
  }

  async decide(request: RequestContext): Promise<Decision> {
    try {
      return await this.decideOrThrow(request);
    } catch (error) {
      this.deps.logger.error({ err: error instanceof Error ? error.message : String(error), requestId: request.requestId }, 'inbound decision failed');
      return deny('internal_error');
    }
  }

  private async decideOrThrow(request: RequestContext): Promise<Decision> {
    const match = this.rules.match(request);
    if (match === undefined) return this.decideDefault(request);
    const { rule, pathParams } = match;
    const facts: DecisionFacts = { rule: rule.name };
    if (rule.dryRun) facts.dryRun = true;
    if (rule.auth === 'none') return allow('public_route', facts, [], IDENTITY_HEADER_NAMES);

    const audience = rule.audience ?? request.contextExtensions.audience;
    const identity = await this.authenticate(request, audience, facts);
    if (identity.kind === 'deny') return identity.decision;
    const token = identity.token;
    const accepted = this.accepts(rule, token);
    if (!accepted.ok) return deny(accepted.reason, { ...facts, detail: accepted.detail ?? '' });
    if (rule.auth === 'token') return this.allowWith('allowed', token, facts);

    const queries: PermissionQuery[] = [];
    for (const check of rule.checks) {
      const built = check.build({ request, pathParams, token }, this.defaultConsistency);
      if (isBuildError(built)) return deny('invalid_check_input', { ...facts, detail: built.error });
      queries.push(built);
    }
    const answers = await Promise.all(queries.map((query) => this.deps.checker.check(query)));
    const records: CheckRecord[] = answers.map((answer, i) => {
      const query = queries[i] as PermissionQuery;
      return {
        resource: formatObject(query.resource),
        permission: query.permission,
        subject: formatObject(query.subject),
        result: resultText(answer),
        cached: answer.cached,
      };
    });
    facts.checks = records;
    const verdict = combine(answers);
    if (!verdict.ok) return deny(verdict.reason, verdict.detail === undefined ? facts : { ...facts, detail: verdict.detail });
    return this.allowWith('allowed', token, facts);
  }

  private async decideDefault(request: RequestContext): Promise<Decision> {
    switch (this.config.default) {
      case 'allow':
        return allow('default_allow', {}, [], IDENTITY_HEADER_NAMES);
      case 'token': {
        const facts: DecisionFacts = {};
        const identity = await this.authenticate(request, request.contextExtensions.audience, facts);
        return identity.kind === 'deny' ? identity.decision : this.allowWith('default_allow', identity.token, facts);
      }
      case 'deny':
        return deny('no_matching_rule');
    }
  }

  private async authenticate(
    request: RequestContext,
    audience: string | undefined,
    facts: DecisionFacts,
  ): Promise<{ kind: 'token'; token: VerifiedToken } | { kind: 'deny'; decision: Decision }> {
    const bearer = readBearer(request, this.deps.maxTokenBytes);
    if (bearer.kind === 'none') return { kind: 'deny', decision: deny('missing_token', { ...facts, tokenKind: 'none' }, CHALLENGE_MISSING) };
    if (bearer.kind === 'invalid') return { kind: 'deny', decision: deny(bearer.reason, facts, CHALLENGE_INVALID) };
    const result = await this.deps.verifier.verify(bearer.token, audience);
    if (audience !== undefined) facts.audience = audience;
    if (!result.ok) {
      const denied = deny(result.reason, result.detail === undefined ? facts : { ...facts, detail: result.detail });
      // Only token problems get a challenge; an outage (keys_unavailable, 503) is not the caller's fault.
      return { kind: 'deny', decision: denied.status === 401 ? deny(result.reason, denied.facts, CHALLENGE_INVALID) : denied };
    }
    tokenFacts(result.token, facts);
    if (UNSAFE_HEADER_VALUE.test(result.token.subject) || (result.token.actor !== undefined && UNSAFE_HEADER_VALUE.test(result.token.actor))) {
      return { kind: 'deny', decision: deny('invalid_claim', { ...facts, detail: 'sub or act.sub has control characters' }, CHALLENGE_INVALID) };
    }
    return { kind: 'token', token: result.token };
  }

  private accepts(rule: CompiledRule, token: VerifiedToken): Outcome {
    if (rule.issuerKinds !== undefined && !rule.issuerKinds.has(token.issuerKind)) {
      return token.issuerKind === 'external'
        ? { ok: false, reason: 'external_token_not_accepted', detail: `rule ${rule.name} takes ${[...rule.issuerKinds].join(', ')} tokens` }
        : { ok: false, reason: 'unknown_issuer', detail: `rule ${rule.name} does not take ${token.issuerKind} tokens` };
    }
    if (rule.issuers !== undefined && !rule.issuers.has(token.issuerName)) {
      return { ok: false, reason: 'unknown_issuer', detail: `rule ${rule.name} does not take tokens from ${token.issuerName}` };
    }
    return { ok: true };
  }

  private allowWith(reason: Reason, token: VerifiedToken, facts: DecisionFacts): Decision {
    const headers: Array<readonly [string, string]> = [
      [IDENTITY_HEADERS.subject, token.subject],
      [IDENTITY_HEADERS.subjectType, token.subjectType],
      [IDENTITY_HEADERS.issuer, token.issuerName],
    ];
    if (token.actor !== undefined) headers.push([IDENTITY_HEADERS.actor, token.actor]);
    // Every identity header is removed, set or not, so a spoofed one (e.g. actor) never survives.
    return allow(reason, facts, headers, IDENTITY_HEADER_NAMES);
  }
}

/**
 * All checks must pass. A definite "no" outranks an outage: if one check is denied the request
 * is forbidden (403) whatever happened to the others, so the caller is not told to retry.
 */
function combine(answers: readonly PermissionAnswer[]): Outcome {
  let conditional = false;
  let error: Outcome | undefined;
  for (const answer of answers) {
    if (answer.outcome === 'denied') return { ok: false, reason: 'permission_denied' };
    if (answer.outcome === 'conditional') conditional = true;
    else if (answer.outcome === 'error' && error === undefined) {
      error = answer.detail === undefined ? { ok: false, reason: answer.reason } : { ok: false, reason: answer.reason, detail: answer.detail };
    }
  }
  // CONDITIONAL is a definite "not without more context": a deny, and as final as a denial.
  if (conditional) return { ok: false, reason: 'conditional_permission', detail: 'caveat context incomplete' };
  return error ?? { ok: true };
}

export function createInboundAuthorizer(config: NonNullable<InboundConfig>, deps: InboundAuthorizerDeps): Authorizer {
  return new InboundAuthorizer(config, deps);
}
