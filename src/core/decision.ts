/**
 * What the decision core answers. The Envoy adapter renders it (src/envoy/check-response.ts);
 * logging and metrics read `reason` and `facts`. Reasons are a closed vocabulary so dashboards,
 * `x-jwtauth-reason` and the troubleshooting page (docs/troubleshooting.md) agree.
 */

/** Every reason the sidecar can give. Keep docs/troubleshooting.md in step with this list. */
export const REASONS = {
  // allow
  allowed: 200,
  public_route: 200,
  default_allow: 200,
  internal_token_passed: 200,
  service_token_attached: 200,
  user_token_exchanged: 200,
  on_behalf_of_token_attached: 200,
  dry_run: 200,
  // malformed requests
  malformed_request: 400,
  missing_direction: 400,
  unknown_direction: 400,
  headers_too_large: 431,
  invalid_header_value: 400,
  // identity
  missing_token: 401,
  duplicate_authorization: 401,
  malformed_authorization: 401,
  token_too_large: 401,
  malformed_token: 401,
  unknown_issuer: 401,
  disallowed_algorithm: 401,
  unknown_key: 401,
  bad_signature: 401,
  token_expired: 401,
  token_not_yet_valid: 401,
  token_too_old: 401,
  wrong_audience: 401,
  wrong_token_type: 401,
  missing_claim: 401,
  invalid_claim: 401,
  external_token_not_accepted: 401,
  // permission
  no_matching_rule: 403,
  permission_denied: 403,
  conditional_permission: 403,
  on_behalf_of_not_permitted: 403,
  on_behalf_of_not_allowed_for_caller: 403,
  unknown_upstream: 403,
  invalid_check_input: 403,
  // outages and limits
  keys_unavailable: 503,
  permission_backend_unavailable: 503,
  permission_backend_timeout: 503,
  permission_backend_overloaded: 503,
  token_source_unavailable: 503,
  token_source_timeout: 503,
  token_source_tls_error: 503,
  token_exchange_rejected: 401,
  token_exchange_invalid_target: 403,
  token_source_error: 503,
  not_ready: 503,
  internal_error: 500,
} as const;

export type Reason = keyof typeof REASONS;
export type DenyStatus = 400 | 401 | 403 | 431 | 500 | 503;

/** Header names are lower-case; values are plain strings (never joined lists). */
export type HeaderList = ReadonlyArray<readonly [name: string, value: string]>;

export interface CheckRecord {
  readonly resource: string;
  readonly permission: string;
  readonly subject: string;
  /** `allowed`, `denied`, `conditional`, or the failure reason. */
  readonly result: string;
  readonly cached: boolean;
}

/** What happened, for decision logs and `jwtauth-sidecar check`. Never holds a token. */
export interface DecisionFacts {
  rule?: string;
  subject?: string;
  subjectType?: string;
  issuer?: string;
  audience?: string;
  tokenKind?: 'internal' | 'external' | 'service' | 'on_behalf_of' | 'none';
  checks?: CheckRecord[];
  /** Operator-facing detail (e.g. which claim was missing). Never sent to the client. */
  detail?: string;
  /** True when the rule that decided is in dry-run. */
  dryRun?: boolean;
  /** Set on a dry-run allow: the reason the request would have been denied with. */
  wouldDeny?: Reason;
}

export interface Allow {
  readonly kind: 'allow';
  readonly reason: Reason;
  /** Set on the upstream request, always overwriting. */
  readonly setHeaders: HeaderList;
  /** Removed from the upstream request before it is forwarded. */
  readonly removeHeaders: readonly string[];
  readonly facts: DecisionFacts;
}

export interface Deny {
  readonly kind: 'deny';
  readonly reason: Reason;
  readonly status: DenyStatus;
  /** Extra response headers, e.g. `www-authenticate`. */
  readonly headers: HeaderList;
  readonly facts: DecisionFacts;
}

export type Decision = Allow | Deny;

const NO_HEADERS: HeaderList = Object.freeze([]) as HeaderList;
const NO_NAMES: readonly string[] = Object.freeze([]) as readonly string[];

export function allow(
  reason: Reason,
  facts: DecisionFacts = {},
  setHeaders: HeaderList = NO_HEADERS,
  removeHeaders: readonly string[] = NO_NAMES,
): Allow {
  return { kind: 'allow', reason, setHeaders, removeHeaders, facts };
}

export function deny(reason: Reason, facts: DecisionFacts = {}, headers: HeaderList = NO_HEADERS): Deny {
  const status = REASONS[reason];
  return { kind: 'deny', reason, status: (status === 200 ? 403 : status) as DenyStatus, headers, facts };
}
