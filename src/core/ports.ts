/**
 * The roles the decision core depends on. Each is one small interface; adapters at the edges
 * (src/identity, src/spicedb, src/tokens) implement them, and decorators add caching, limits and
 * metrics around them rather than inside them.
 */
import type { Decision, Reason } from './decision.js';
import type { RequestContext } from './request-context.js';

/** Decides one request. The inbound and outbound authorizers implement this; so does the router. */
export interface Authorizer {
  decide(request: RequestContext): Promise<Decision>;
}

// ---------------------------------------------------------------- identity (token verification)

export type IssuerKind = 'internal' | 'external';

export interface VerifiedToken {
  /** The configured issuer's name (not its `iss` URL). */
  readonly issuerName: string;
  readonly issuer: string;
  readonly issuerKind: IssuerKind;
  /** SpiceDB object type for this issuer's subjects, e.g. `user` or `service`. */
  readonly subjectType: string;
  readonly subject: string;
  readonly audience: readonly string[];
  /** Seconds since the epoch. */
  readonly expiresAt: number;
  /** `act.sub` when the token was issued on behalf of a user. */
  readonly actor: string | undefined;
  readonly claims: Readonly<Record<string, unknown>>;
}

export type VerifyResult =
  | { readonly ok: true; readonly token: VerifiedToken }
  | { readonly ok: false; readonly reason: Reason; readonly detail?: string };

export interface TokenVerifier {
  /**
   * Verifies signature, issuer, algorithm, `typ`, time claims and required claims, then checks
   * that `aud` contains `expectedAudience` (or the issuer's configured audience when omitted).
   */
  verify(token: string, expectedAudience?: string): Promise<VerifyResult>;
  /** True once every issuer has usable keys. */
  ready(): boolean;
}

// ---------------------------------------------------------------- permissions (SpiceDB)

export type Consistency =
  | { readonly kind: 'minimize_latency' }
  | { readonly kind: 'fully_consistent' }
  | { readonly kind: 'at_least_as_fresh'; readonly zedToken: string };

export interface ObjectRef {
  readonly type: string;
  readonly id: string;
}

export interface PermissionQuery {
  readonly resource: ObjectRef;
  readonly permission: string;
  readonly subject: ObjectRef & { readonly relation?: string };
  readonly consistency: Consistency;
  /** Caveat context; JSON-compatible values only. */
  readonly context?: Readonly<Record<string, unknown>>;
}

export type PermissionAnswer =
  | { readonly outcome: 'allowed' | 'denied' | 'conditional'; readonly cached: boolean }
  | { readonly outcome: 'error'; readonly reason: Reason; readonly cached: false; readonly detail?: string };

export interface PermissionChecker {
  check(query: PermissionQuery): Promise<PermissionAnswer>;
  ready(): boolean;
}

// ---------------------------------------------------------------- token sources (outbound)

/** Public keys a minting token source publishes; the admin server serves them. */
export interface PublicKeyDocuments {
  jwks(): { keys: object[] };
  openidConfiguration(): object;
}

export interface IssuedToken {
  readonly token: string;
  /** Seconds since the epoch. */
  readonly expiresAt: number;
  readonly issuedAt: number;
}

/** What the outbound side asks a token source for. */
export type TokenRequest =
  | { readonly kind: 'service'; readonly audience: string }
  | {
      readonly kind: 'exchange';
      readonly audience: string;
      readonly subjectToken: string;
      readonly subjectTokenHash: string;
      /** The subject token's `sub`, as the verifier accepted it. */
      readonly subject: string;
    }
  | { readonly kind: 'on_behalf_of'; readonly audience: string; readonly user: string; readonly userType: string };

export type TokenResult =
  | { readonly ok: true; readonly token: IssuedToken }
  | { readonly ok: false; readonly reason: Reason; readonly detail?: string };

export interface TokenSource {
  readonly name: string;
  issue(request: TokenRequest): Promise<TokenResult>;
}
