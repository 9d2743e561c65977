/**
 * The inbound decision: find the rule, verify the caller's token, run the rule's SpiceDB checks,
 * and answer with verified identity headers. Pure over its ports (TokenVerifier,
 * PermissionChecker): no I/O of its own, so it is tested with fakes and reused as it is.
 * Fails closed: a port that throws becomes an internal_error deny, never an allow.
 */
import { readBearer } from '../core/bearer.js';
import { allow, deny, withDetail } from '../core/decision.js';
import type { AllowReason, Decision, DecisionFacts, HeaderList } from '../core/decision.js';
import { IDENTITY_HEADER_NAMES, IDENTITY_HEADERS } from '../core/identity-headers.js';
import { andThen } from '../core/awaitable.js';
import type { Awaitable } from '../core/awaitable.js';
import type { Authorizer, Consistency, PermissionChecker, TokenVerifier, VerifiedToken, VerifyResult } from '../core/ports.js';
import type { RequestContext } from '../core/request-context.js';
import { failure, settled } from '../core/result.js';
import type { Failure } from '../core/result.js';
import { tokenFacts } from '../core/token-facts.js';
import { FULLY_CONSISTENT, MINIMIZE_LATENCY } from '../rules/check-spec.js';
import type { MessageTypes } from '../rules/message-fields.js';
import { runChecks } from '../rules/run-checks.js';
import { compileRules } from './compile-rules.js';
import type { InboundConfig } from './config.js';
import type { CompiledRule, RuleMatcher } from './rule-index.js';

export interface InboundPorts {
  readonly verifier: TokenVerifier;
  readonly checker: PermissionChecker;
  readonly maxTokenBytes: number;
}

const CHALLENGE_MISSING: HeaderList = Object.freeze([['www-authenticate', 'Bearer realm="jwtauth"'] as const]);
const CHALLENGE_INVALID: HeaderList = Object.freeze([['www-authenticate', 'Bearer realm="jwtauth", error="invalid_token"'] as const]);
/** Control characters would make Envoy reject the header (or split it); such a subject is refused. */
const UNSAFE_HEADER_VALUE = /[\u0000-\u0008\u000a-\u001f\u007f]/;

type Authenticated = { readonly ok: true; readonly token: VerifiedToken; readonly facts: DecisionFacts } | { readonly ok: false; readonly decision: Decision };

class InboundAuthorizer implements Authorizer {
  /** Every allow removes these, set or not, so a spoofed identity header never reaches the app. */
  readonly strippedHeaders = IDENTITY_HEADER_NAMES;
  readonly #rules: RuleMatcher;
  readonly #defaultConsistency: Consistency;
  readonly #identityHeadersOf = new WeakMap<VerifiedToken, HeaderList>();

  constructor(
    private readonly config: NonNullable<InboundConfig>,
    private readonly ports: InboundPorts,
    messages: MessageTypes,
    decorateMatcher: ((rules: RuleMatcher) => RuleMatcher) | undefined,
  ) {
    const rules = compileRules(config.rules, messages);
    this.#rules = decorateMatcher ? decorateMatcher(rules) : rules;
    this.#defaultConsistency = config.consistency === 'fully_consistent' ? FULLY_CONSISTENT : MINIMIZE_LATENCY;
  }

  decide(request: RequestContext): Awaitable<Decision> {
    const match = this.#rules.match(request);
    if (match === undefined) return this.#decideDefault(request);
    const { rule, pathParams } = match;
    const ruleFacts = rule.facts;
    if (rule.auth === 'none') return allow('public_route', ruleFacts, [], this.strippedHeaders);
    return andThen(this.#authenticate(request, rule.audience ?? request.contextExtensions.audience, ruleFacts), (identity) =>
      identity.ok ? this.#authorize(request, rule, pathParams, identity.token, identity.facts) : identity.decision,
    );
  }

  /** With the caller's token verified: the rule's own refusals, its requirement, then its checks. */
  #authorize(request: RequestContext, rule: CompiledRule, pathParams: Readonly<Record<string, string>>, token: VerifiedToken, tokenFacts: DecisionFacts): Awaitable<Decision> {
    const refused = refusal(rule, token);
    if (refused !== undefined) return deny(refused.reason, withDetail(tokenFacts, refused.detail));
    // Before SpiceDB: a token without the scope or claim the route needs costs no check.
    const requirement = rule.requirement;
    const met = requirement?.evaluate(token.claims);
    const facts = met === undefined ? tokenFacts : { ...tokenFacts, conditions: met.records };
    if (met !== undefined && !met.met) return deny(met.reason, withDetail(facts, `rule ${rule.name}: ${met.detail}`), met.challenge);
    if (rule.auth === 'token') return this.#allowWith('allowed', token, facts);

    // After the token: an unauthenticated caller never makes the sidecar decode its message.
    const reader = rule.body;
    const checked = runChecks({
      checks: rule.checks,
      scope: { request, pathParams, token },
      ...(reader === undefined ? {} : { readBody: () => reader.read(request.body) }),
      consistency: this.#defaultConsistency,
      checker: this.ports.checker,
      deniedReason: 'permission_denied',
    });
    return andThen(checked, (verdict) => {
      const read = verdict.body === undefined ? facts : { ...facts, body: verdict.body };
      if (!verdict.ok) {
        const denied = verdict.checks === undefined ? read : { ...read, checks: verdict.checks };
        return deny(verdict.reason, withDetail(denied, verdict.detail));
      }
      return this.#allowWith('allowed', token, { ...read, checks: verdict.checks });
    });
  }

  #decideDefault(request: RequestContext): Awaitable<Decision> {
    switch (this.config.default) {
      case 'allow':
        return allow('default_allow', {}, [], this.strippedHeaders);
      case 'token':
        return andThen(this.#authenticate(request, request.contextExtensions.audience, {}), (identity) =>
          identity.ok ? this.#allowWith('default_allow', identity.token, identity.facts) : identity.decision,
        );
      case 'deny':
        return deny('no_matching_rule');
    }
  }

  #authenticate(request: RequestContext, audience: string | undefined, ruleFacts: DecisionFacts): Awaitable<Authenticated> {
    const bearer = readBearer(request, this.ports.maxTokenBytes);
    if (!bearer.ok) return { ok: false, decision: deny(bearer.reason, ruleFacts, CHALLENGE_INVALID) };
    const presented = bearer.value;
    if (presented === undefined) return { ok: false, decision: deny('missing_token', { ...ruleFacts, tokenKind: 'none' }, CHALLENGE_MISSING) };
    const verified = settled(() => this.ports.verifier.verify(presented, audience), 'token verification');
    return andThen(verified, (result) => identityOf(result, audience === undefined ? ruleFacts : { ...ruleFacts, audience }));
  }

  #allowWith(reason: AllowReason, token: VerifiedToken, facts: DecisionFacts): Decision {
    return allow(reason, facts, this.#identityHeaders(token), this.strippedHeaders);
  }

  /**
   * The identity headers an allow sets for `token`. A verified token is the same object on every
   * hit of the verifier's cache, so its headers are built once per token, not per Check.
   */
  #identityHeaders(token: VerifiedToken): HeaderList {
    let headers = this.#identityHeadersOf.get(token);
    if (headers === undefined) {
      const list: Array<readonly [string, string]> = [
        [IDENTITY_HEADERS.subject, token.subject],
        [IDENTITY_HEADERS.subjectType, token.subjectType],
        [IDENTITY_HEADERS.issuer, token.issuer],
      ];
      if (token.actor !== undefined) list.push([IDENTITY_HEADERS.actor, token.actor]);
      headers = Object.freeze(list);
      this.#identityHeadersOf.set(token, headers);
    }
    return headers;
  }
}

/** The verifier's answer as an identity to authorize, or the denial it amounts to. */
function identityOf(result: VerifyResult, asked: DecisionFacts): Authenticated {
  if (!result.ok) {
    // Only token problems get a challenge; an outage (keys_unavailable, 503) is not the caller's fault.
    const denied = deny(result.reason, withDetail(asked, result.detail));
    return { ok: false, decision: denied.status === 401 ? deny(result.reason, denied.facts, CHALLENGE_INVALID) : denied };
  }
  const token = result.value;
  const facts = { ...asked, ...tokenFacts(token) };
  if (UNSAFE_HEADER_VALUE.test(token.subject) || (token.actor !== undefined && UNSAFE_HEADER_VALUE.test(token.actor))) {
    return { ok: false, decision: deny('invalid_claim', { ...facts, detail: 'sub or act.sub has control characters' }, CHALLENGE_INVALID) };
  }
  return { ok: true, token, facts };
}

/** Why the rule refuses tokens of this issuer or kind, if it does. */
function refusal(rule: CompiledRule, token: VerifiedToken): Failure | undefined {
  if (rule.issuerKinds !== undefined && !rule.issuerKinds.has(token.issuerKind)) {
    return token.issuerKind === 'external'
      ? failure('external_token_not_accepted', `rule ${rule.name} takes ${[...rule.issuerKinds].join(', ')} tokens`)
      : failure('unknown_issuer', `rule ${rule.name} does not take ${token.issuerKind} tokens`);
  }
  if (rule.issuers !== undefined && !rule.issuers.has(token.issuer)) {
    return failure('unknown_issuer', `rule ${rule.name} does not take tokens from ${token.issuer}`);
  }
  return undefined;
}

/** `decorateMatcher` wraps the compiled rules, e.g. in a tracing span; none by default. */
export function createInboundAuthorizer(
  config: NonNullable<InboundConfig>,
  ports: InboundPorts,
  messages: MessageTypes,
  decorateMatcher?: (rules: RuleMatcher) => RuleMatcher,
): Authorizer {
  return new InboundAuthorizer(config, ports, messages, decorateMatcher);
}
