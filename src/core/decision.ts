/**
 * What the decision core answers. The Envoy adapter renders it (src/envoy/check-response.ts);
 * logging and metrics read `reason` and `facts`. Reasons are a closed vocabulary so dashboards,
 * `x-jwtauth-reason` and the troubleshooting page (docs/troubleshooting.md) agree.
 */

/** Why a request was let through. */
export const ALLOW_REASONS = [
  'allowed',
  'public_route',
  'default_allow',
  'internal_token_passed',
  'service_token_attached',
  'user_token_exchanged',
  'on_behalf_of_token_attached',
  'dry_run',
] as const;

export type AllowReason = (typeof ALLOW_REASONS)[number];
export type DenyStatus = 400 | 401 | 403 | 413 | 415 | 431 | 500 | 503;

/**
 * Why a request was refused: its HTTP status, and the text the caller reads after the reason in
 * the response body (gRPC callers: `grpc-message`). One table, like fastify's error codes, so the
 * renderer never decides a status itself. Keep docs/troubleshooting.md in step with it.
 */
export const DENY_REASONS = {
  // the request itself
  malformed_request: { status: 400, text: 'the request is not one the sidecar can decide' },
  missing_direction: { status: 400, text: 'the route sets no direction' },
  unknown_direction: { status: 400, text: 'no configuration for this direction' },
  headers_too_large: { status: 431, text: 'request headers too large' },
  invalid_header_value: { status: 400, text: 'a header value is not acceptable' },
  // the request body, for rules that read it
  body_missing: { status: 400, text: 'the rule reads the request body and none arrived' },
  body_truncated: { status: 413, text: 'the request body was cut short' },
  body_too_large: { status: 413, text: 'the request body is over the limit' },
  body_malformed: { status: 400, text: 'the request body cannot be decoded' },
  body_multiple_messages: { status: 400, text: 'a unary call carried more than one message' },
  body_unsupported_encoding: { status: 415, text: 'the message compression is not supported' },
  body_field_missing: { status: 400, text: 'the message lacks a field the rule reads' },
  // identity
  missing_token: { status: 401, text: 'a bearer token is required' },
  duplicate_authorization: { status: 401, text: 'more than one Authorization header' },
  malformed_authorization: { status: 401, text: 'the Authorization header is not a bearer token' },
  token_too_large: { status: 401, text: 'the token is too large' },
  malformed_token: { status: 401, text: 'the token is not a JWT' },
  unknown_issuer: { status: 401, text: 'the token issuer is not accepted' },
  disallowed_algorithm: { status: 401, text: 'the token algorithm is not accepted' },
  unknown_key: { status: 401, text: 'the token signing key is unknown' },
  bad_signature: { status: 401, text: 'the token signature does not verify' },
  token_expired: { status: 401, text: 'the token has expired' },
  token_not_yet_valid: { status: 401, text: 'the token is not valid yet' },
  token_too_old: { status: 401, text: 'the token lives longer than allowed' },
  wrong_audience: { status: 401, text: 'the token is for another audience' },
  wrong_token_type: { status: 401, text: 'the token type is not accepted' },
  missing_claim: { status: 401, text: 'the token lacks a required claim' },
  invalid_claim: { status: 401, text: 'a token claim is invalid' },
  token_inactive: { status: 401, text: 'the issuer says the token is not active' },
  external_token_not_accepted: { status: 401, text: 'this route takes internal tokens only' },
  token_exchange_rejected: { status: 401, text: 'the token service refused to exchange the token' },
  // permission
  no_matching_rule: { status: 403, text: 'no rule covers this request' },
  permission_denied: { status: 403, text: 'permission denied' },
  conditional_permission: { status: 403, text: 'permission depends on context the request lacks' },
  on_behalf_of_not_permitted: { status: 403, text: 'the user does not allow acting on their behalf here' },
  on_behalf_of_not_allowed_for_caller: { status: 403, text: 'this caller may not act on behalf of users' },
  unknown_upstream: { status: 403, text: 'the upstream may not receive tokens' },
  invalid_check_input: { status: 403, text: 'the permission check cannot be built' },
  insufficient_scope: { status: 403, text: 'the token lacks a scope this route requires' },
  claim_condition_failed: { status: 403, text: 'a token claim does not meet a condition of this route' },
  token_exchange_invalid_target: { status: 403, text: 'the token service refused the audience' },
  // outages and limits
  keys_unavailable: { status: 503, text: 'token keys unavailable' },
  permission_backend_unavailable: { status: 503, text: 'permission service unavailable' },
  permission_backend_timeout: { status: 503, text: 'permission service timed out' },
  permission_backend_overloaded: { status: 503, text: 'permission service overloaded' },
  token_source_unavailable: { status: 503, text: 'token service unavailable' },
  token_source_timeout: { status: 503, text: 'token service timed out' },
  token_source_tls_error: { status: 503, text: 'token service TLS failed' },
  token_source_error: { status: 503, text: 'token service failed' },
  not_ready: { status: 503, text: 'the sidecar is not ready' },
  internal_error: { status: 500, text: 'internal error' },
} as const satisfies Record<string, { readonly status: DenyStatus; readonly text: string }>;

export type DenyReason = keyof typeof DENY_REASONS;

/** Header names are lower-case; values are plain strings (never joined lists). */
export type HeaderList = ReadonlyArray<readonly [name: string, value: string]>;

export interface PermissionCheckRecord {
  readonly resource: string;
  readonly permission: string;
  readonly subject: string;
  /** `allowed`, `denied`, `conditional`, or the failure reason. */
  readonly result: string;
  readonly cached: boolean;
}

export interface ConditionRecord {
  /** As configured, e.g. `scope vm.write` or `claim tenant equals "acme"`. */
  readonly condition: string;
  readonly met: boolean;
}

/** What happened, for decision logs and `jwtauth-sidecar check`. Never holds a token. */
export interface DecisionFacts {
  readonly rule?: string;
  readonly subject?: string;
  readonly subjectType?: string;
  readonly issuer?: string;
  readonly audience?: string;
  readonly tokenKind?: 'internal' | 'external' | 'service' | 'on_behalf_of' | 'none';
  readonly checks?: readonly PermissionCheckRecord[];
  /** Message fields a rule read, by path (values as rendered into checks). */
  readonly body?: Readonly<Record<string, string>>;
  /** Operator-facing detail (e.g. which claim was missing). Never sent to the client. */
  readonly detail?: string;
  /** True when the rule that decided is in dry-run. */
  readonly dryRun?: boolean;
  /** Set on a dry-run allow: the reason the request would have been denied with. */
  readonly wouldDeny?: DenyReason;
  /** The rule's `require` conditions (scopes, claim conditions) and whether the token met each; never a claim value. */
  readonly conditions?: readonly ConditionRecord[];
}

export interface Allow {
  readonly kind: 'allow';
  readonly reason: AllowReason;
  /** Set on the upstream request, always overwriting. */
  readonly setHeaders: HeaderList;
  /** Removed from the upstream request before it is forwarded. */
  readonly removeHeaders: readonly string[];
  readonly facts: DecisionFacts;
}

export interface Deny {
  readonly kind: 'deny';
  readonly reason: DenyReason;
  readonly status: DenyStatus;
  /** Extra response headers, e.g. `www-authenticate`. */
  readonly headers: HeaderList;
  readonly facts: DecisionFacts;
}

export type Decision = Allow | Deny;

const NO_HEADERS: HeaderList = Object.freeze([]) as HeaderList;
const NO_NAMES: readonly string[] = Object.freeze([]) as readonly string[];

export function allow(
  reason: AllowReason,
  facts: DecisionFacts = {},
  setHeaders: HeaderList = NO_HEADERS,
  removeHeaders: readonly string[] = NO_NAMES,
): Allow {
  return { kind: 'allow', reason, setHeaders, removeHeaders, facts };
}

export function deny(reason: DenyReason, facts: DecisionFacts = {}, headers: HeaderList = NO_HEADERS): Deny {
  return { kind: 'deny', reason, status: DENY_REASONS[reason].status, headers, facts };
}

/** `facts` with `detail` set when there is one; facts never carry an `undefined` detail. */
export function withDetail(facts: DecisionFacts, detail: string | undefined): DecisionFacts {
  return detail === undefined ? facts : { ...facts, detail };
}
