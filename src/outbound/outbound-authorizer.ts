/**
 * The outbound decision: every call leaving the pod either carries an internal token for exactly
 * its upstream, or does not leave.
 *   (a) an internal token for this upstream passes unchanged;
 *   (b) an external user token is exchanged for an internal one for this upstream;
 *   (c) no token: a service token for this pod (or, when a background job names a user and policy
 *       allows it, an on-behalf-of token) is attached;
 *   (d) anything else is denied with its own reason. A bad user token is never replaced by a
 *       service token, and no request is allowed without the token it needs.
 * Pure over the ports (TokenVerifier, PermissionChecker, TokenSource), so it is tested with fakes.
 */
import { createHash } from 'node:crypto';
import { readBearer } from '../core/bearer.js';
import { allow, deny } from '../core/decision.js';
import type { Decision, DecisionFacts, HeaderList } from '../core/decision.js';
import type { Authorizer, PermissionChecker, TokenRequest, TokenSource, TokenVerifier, VerifiedToken } from '../core/ports.js';
import type { RequestContext } from '../core/request-context.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { OutboundConfig } from './config.js';
import { OnBehalfOfPolicy } from './on-behalf-of.js';
import { UpstreamAllowList } from './upstreams.js';

export interface OutboundDeps {
  readonly verifier: TokenVerifier;
  readonly checker: PermissionChecker;
  readonly tokens: TokenSource;
  readonly serviceName: string;
  /** SpiceDB type of this service (`service.subjectType`), for decision facts. */
  readonly serviceSubjectType: string;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly maxTokenBytes: number;
}

export function createOutboundAuthorizer(config: NonNullable<OutboundConfig>, deps: OutboundDeps): Authorizer {
  return new OutboundAuthorizer(config, deps);
}

const AUTHORIZATION = 'authorization';

function sha256(token: string): string {
  return createHash('sha256').update(token).digest('base64url');
}

class OutboundAuthorizer implements Authorizer {
  private readonly upstreams: UpstreamAllowList;
  private readonly onBehalfOf: OnBehalfOfPolicy;
  /** Every allow removes the on-behalf-of header: it is an instruction to the sidecar, not data for the upstream. */
  private readonly removeHeaders: readonly string[];

  constructor(
    config: NonNullable<OutboundConfig>,
    private readonly deps: OutboundDeps,
  ) {
    this.upstreams = new UpstreamAllowList(config.upstreams);
    this.onBehalfOf = new OnBehalfOfPolicy(config.onBehalfOf, deps.serviceName);
    this.removeHeaders = Object.freeze([this.onBehalfOf.header]);
  }

  async decide(request: RequestContext): Promise<Decision> {
    try {
      return await this.decideUnguarded(request);
    } catch (error) {
      // Fail closed: a bug or a port that throws denies; it never lets the call out.
      this.deps.logger.error({ err: { name: (error as Error).name, message: (error as Error).message } }, 'outbound decision failed');
      return deny('internal_error', { detail: 'outbound decision failed unexpectedly' });
    }
  }

  private async decideUnguarded(request: RequestContext): Promise<Decision> {
    const match = this.upstreams.match(request);
    if (!match.ok) return deny('unknown_upstream', { detail: match.detail, tokenKind: 'none' });
    const audience = match.upstream.audience;

    const oboHeader = this.onBehalfOf.header;
    const onBehalfOf = request.headers.get(oboHeader);
    // Single-valued: Envoy joins repeats of a header with "," (always in the classic headers map),
    // so a comma means it arrived more than once, whatever name it is configured under.
    if (request.duplicateHeaders.has(oboHeader) || onBehalfOf?.includes(',')) {
      return deny('invalid_header_value', { audience, detail: `more than one ${oboHeader} header` });
    }

    const bearer = readBearer(request, this.deps.maxTokenBytes);
    switch (bearer.kind) {
      case 'invalid':
        return deny(bearer.reason, { audience });
      case 'token':
        if (onBehalfOf !== undefined) {
          return deny('malformed_request', { audience, detail: `a request with a token cannot also name a user in ${oboHeader}` });
        }
        return this.withToken(bearer.token, audience);
      case 'none':
        return onBehalfOf === undefined ? this.serviceToken(audience) : this.onBehalfOfToken(request, onBehalfOf, audience);
    }
  }

  private async withToken(token: string, audience: string): Promise<Decision> {
    let verified = await this.deps.verifier.verify(token, audience);
    if (!verified.ok && verified.reason === 'wrong_audience') {
      // An external user token is audienced for the public API, not this upstream: verify it
      // against its issuer's own audience to learn whether it is one to exchange.
      const asExternal = await this.deps.verifier.verify(token);
      if (asExternal.ok && asExternal.token.issuerKind === 'external') verified = asExternal;
      else if (asExternal.ok) {
        return deny('wrong_audience', tokenFacts(asExternal.token, audience, `internal token is not for ${audience}`));
      }
    }
    if (!verified.ok) {
      const facts: DecisionFacts = { audience, tokenKind: 'none' };
      if (verified.detail !== undefined) facts.detail = verified.detail;
      return deny(verified.reason, facts);
    }
    const subject = verified.token;
    if (subject.issuerKind === 'internal') {
      return allow('internal_token_passed', tokenFacts(subject, audience), NO_SET, this.removeHeaders);
    }
    return this.attach(
      { kind: 'exchange', audience, subjectToken: token, subjectTokenHash: sha256(token), subject: subject.subject },
      'user_token_exchanged',
      tokenFacts(subject, audience),
    );
  }

  private serviceToken(audience: string): Promise<Decision> {
    return this.attach({ kind: 'service', audience }, 'service_token_attached', {
      audience,
      tokenKind: 'service',
      subject: this.deps.serviceName,
      subjectType: this.deps.serviceSubjectType,
    });
  }

  private async onBehalfOfToken(request: RequestContext, rawUser: string, audience: string): Promise<Decision> {
    const outcome = await this.onBehalfOf.authorize(request, rawUser, this.deps.checker);
    if (!outcome.ok) {
      const facts: DecisionFacts = { audience, tokenKind: 'on_behalf_of', detail: outcome.detail };
      // Name the user the denial was about, so the log can be searched by user; not when the
      // header itself was malformed (its text is not a user id).
      if (outcome.reason !== 'invalid_header_value') {
        facts.subject = rawUser.trim();
        facts.subjectType = this.onBehalfOf.userType;
      }
      if (outcome.checks) facts.checks = outcome.checks;
      return deny(outcome.reason, facts);
    }
    return this.attach(
      { kind: 'on_behalf_of', audience, user: outcome.user, userType: this.onBehalfOf.userType },
      'on_behalf_of_token_attached',
      { audience, tokenKind: 'on_behalf_of', subject: outcome.user, subjectType: this.onBehalfOf.userType, checks: outcome.checks },
    );
  }

  private async attach(
    request: TokenRequest,
    reason: 'service_token_attached' | 'user_token_exchanged' | 'on_behalf_of_token_attached',
    facts: DecisionFacts,
  ): Promise<Decision> {
    const result = await this.deps.tokens.issue(request);
    if (!result.ok) {
      const denyFacts: DecisionFacts = { ...facts };
      if (result.detail !== undefined) denyFacts.detail = result.detail;
      return deny(result.reason, denyFacts);
    }
    const headers: HeaderList = [[AUTHORIZATION, `Bearer ${result.token.token}`]];
    return allow(reason, facts, headers, this.removeHeaders);
  }
}

const NO_SET: HeaderList = Object.freeze([]) as HeaderList;

function tokenFacts(token: VerifiedToken, audience: string, detail?: string): DecisionFacts {
  const facts: DecisionFacts = {
    audience,
    tokenKind: token.issuerKind,
    subject: token.subject,
    subjectType: token.subjectType,
    issuer: token.issuerName,
  };
  if (detail !== undefined) facts.detail = detail;
  return facts;
}
