/**
 * The outbound decision: every call leaving the pod either carries an internal token for exactly
 * its upstream, or does not leave.
 *   (a) an internal token for this upstream passes unchanged;
 *   (b) an external user token is exchanged for an internal one for this upstream;
 *   (c) no token: a service token for this pod (or, when a background job names a user and policy
 *       allows it, an on-behalf-of token) is attached;
 *   (d) anything else is denied with its own reason. A bad user token is never replaced by a
 *       service token, and no request is allowed without the token it needs.
 * Pure over the ports (TokenVerifier, PermissionChecker, TokenSource), so it is tested with fakes;
 * a port that throws becomes an internal_error deny.
 */
import { readBearer } from '../core/bearer.js';
import { allow, deny, withDetail } from '../core/decision.js';
import type { AllowReason, Decision, DecisionFacts, HeaderList } from '../core/decision.js';
import type { Authorizer, IssuedToken, PermissionChecker, TokenRequest, TokenSource, TokenVerifier } from '../core/ports.js';
import type { RequestContext } from '../core/request-context.js';
import { andThen } from '../core/awaitable.js';
import type { Awaitable } from '../core/awaitable.js';
import { settled } from '../core/result.js';
import { tokenFacts } from '../core/token-facts.js';
import type { OutboundConfig } from './config.js';
import type { MessageTypes } from '../rules/body-bindings.js';
import { OnBehalfOfPolicy } from './on-behalf-of.js';
import { UpstreamAllowList } from './upstreams.js';

export interface OutboundPorts {
  readonly verifier: TokenVerifier;
  readonly checker: PermissionChecker;
  readonly tokens: TokenSource;
  readonly serviceName: string;
  /** SpiceDB type of this service (`service.subjectType`), for decision facts. */
  readonly serviceSubjectType: string;
  readonly maxTokenBytes: number;
}

export function createOutboundAuthorizer(config: NonNullable<OutboundConfig>, ports: OutboundPorts, messages: MessageTypes): Authorizer {
  return new OutboundAuthorizer(config, ports, messages);
}

const AUTHORIZATION = 'authorization';

/**
 * The header that carries an issued token. A cached token is the same object on every hit of the
 * token cache, so its header is made once per token, not per Check, and goes with it.
 */
const authorizationHeaders = new WeakMap<IssuedToken, HeaderList>();

function authorizationHeader(issued: IssuedToken): HeaderList {
  let headers = authorizationHeaders.get(issued);
  if (headers === undefined) {
    headers = Object.freeze([Object.freeze([AUTHORIZATION, `Bearer ${issued.token}`] as const)]);
    authorizationHeaders.set(issued, headers);
  }
  return headers;
}
const NO_SET: HeaderList = Object.freeze([]) as HeaderList;

class OutboundAuthorizer implements Authorizer {
  /** Every allow removes the on-behalf-of header: it is an instruction to the sidecar, not data for the upstream. */
  readonly strippedHeaders: readonly string[];
  readonly #upstreams: UpstreamAllowList;
  readonly #onBehalfOf: OnBehalfOfPolicy;

  constructor(
    config: NonNullable<OutboundConfig>,
    private readonly ports: OutboundPorts,
    messages: MessageTypes,
  ) {
    this.#upstreams = new UpstreamAllowList(config.upstreams);
    this.#onBehalfOf = new OnBehalfOfPolicy(config.onBehalfOf, ports.serviceName, messages);
    this.strippedHeaders = Object.freeze([this.#onBehalfOf.header]);
  }

  decide(request: RequestContext): Awaitable<Decision> {
    const match = this.#upstreams.match(request);
    if (!match.ok) return deny(match.reason, withDetail({ tokenKind: 'none' }, match.detail));
    const audience = match.value.audience;

    const oboHeader = this.#onBehalfOf.header;
    const onBehalfOf = request.headers.get(oboHeader);
    // Single-valued: Envoy joins repeats of a header with "," (always in the classic headers map),
    // so a comma means it arrived more than once, whatever name it is configured under.
    if (request.duplicateHeaders.has(oboHeader) || onBehalfOf?.includes(',')) {
      return deny('invalid_header_value', { audience, detail: `more than one ${oboHeader} header` });
    }

    const bearer = readBearer(request, this.ports.maxTokenBytes);
    if (!bearer.ok) return deny(bearer.reason, { audience });
    if (bearer.value !== undefined) {
      if (onBehalfOf !== undefined) {
        return deny('malformed_request', { audience, detail: `a request with a token cannot also name a user in ${oboHeader}` });
      }
      return this.#withToken(bearer.value, audience);
    }
    return onBehalfOf === undefined ? this.#serviceToken(audience) : this.#onBehalfOfToken(request, onBehalfOf.trim(), audience);
  }

  async #withToken(token: string, audience: string): Promise<Decision> {
    const verify = (expected?: string) => settled(() => this.ports.verifier.verify(token, expected), 'token verification');
    let verified = await verify(audience);
    if (!verified.ok && verified.reason === 'wrong_audience') {
      // An external user token is audienced for the public API, not this upstream: verify it
      // against its issuer's own audience to learn whether it is one to exchange.
      const asExternal = await verify();
      if (asExternal.ok && asExternal.value.issuerKind === 'external') verified = asExternal;
      else if (asExternal.ok) {
        return deny('wrong_audience', { audience, ...tokenFacts(asExternal.value), detail: `internal token is not for ${audience}` });
      }
    }
    if (!verified.ok) return deny(verified.reason, withDetail({ audience, tokenKind: 'none' }, verified.detail));
    const subject = verified.value;
    const facts: DecisionFacts = { audience, ...tokenFacts(subject) };
    if (subject.issuerKind === 'internal') return allow('internal_token_passed', facts, NO_SET, this.strippedHeaders);
    return this.#attach(
      { kind: 'exchange', audience, subjectToken: token, subjectTokenFingerprint: subject.fingerprint, subject: subject.subject },
      'user_token_exchanged',
      facts,
    );
  }

  #serviceToken(audience: string): Awaitable<Decision> {
    return this.#attach({ kind: 'service', audience }, 'service_token_attached', {
      audience,
      tokenKind: 'service',
      subject: this.ports.serviceName,
      subjectType: this.ports.serviceSubjectType,
    });
  }

  async #onBehalfOfToken(request: RequestContext, user: string, audience: string): Promise<Decision> {
    const userType = this.#onBehalfOf.userType;
    const { denial, checks, body } = await this.#onBehalfOf.authorize(request, user, this.ports.checker);
    const named: DecisionFacts = { audience, tokenKind: 'on_behalf_of', subject: user, subjectType: userType };
    const facts = body === undefined ? named : { ...named, body };
    if (denial !== undefined) {
      // Name the user the denial was about, so the log can be searched by user; not when the
      // header itself was malformed (its text is not a user id).
      const about: DecisionFacts = denial.reason === 'invalid_header_value' ? { audience, tokenKind: 'on_behalf_of' } : facts;
      return deny(denial.reason, withDetail(checks === undefined ? about : { ...about, checks }, denial.detail));
    }
    return this.#attach({ kind: 'on_behalf_of', audience, user, userType }, 'on_behalf_of_token_attached', checks === undefined ? facts : { ...facts, checks });
  }

  #attach(request: TokenRequest, reason: AllowReason, facts: DecisionFacts): Awaitable<Decision> {
    return andThen(settled(() => this.ports.tokens.issue(request), 'token source'), (result) => {
      if (!result.ok) return deny(result.reason, withDetail(facts, result.detail));
      return allow(reason, facts, authorizationHeader(result.value), this.strippedHeaders);
    });
  }
}
