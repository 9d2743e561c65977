/**
 * The roles the decision core depends on. Each is one small interface; adapters at the edges
 * (src/identity, src/spicedb, src/tokens) implement them, and decorators add caching, limits and
 * metrics around them rather than inside them.
 */
import type { Decision } from './decision.js';
import type { RequestContext } from './request-context.js';
import type { Awaitable } from './awaitable.js';
import type { Result } from './result.js';

/**
 * Decides one request. The inbound and outbound authorizers implement this; so do the router and
 * the dry-run layer. A decision whose inputs were all cached comes back at once, not as a promise
 * (awaitable.ts). May throw or reject only on a bug: the Envoy adapter turns that into internal_error.
 */
export interface Authorizer {
  decide(request: RequestContext): Awaitable<Decision>;
  /** Request headers no decision of this authorizer lets through as sent (identity headers, instructions to the sidecar). */
  readonly strippedHeaders: readonly string[];
}

/** Anything that holds connections, timers or workers. The life-cycle owner calls close() once. */
export interface Closable {
  close(): Promise<void>;
}

// ---------------------------------------------------------------- identity (token verification)

type IssuerKind = 'internal' | 'external';

export interface VerifiedToken {
  /** The configured issuer's name, as in identity headers and decision facts. */
  readonly issuer: string;
  /** The token's `iss` URL. */
  readonly iss: string;
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
  /** SHA-256 of the compact token (base64url): a cache key that stands for the token, never the token. */
  readonly fingerprint: string;
}

export type VerifyResult = Result<VerifiedToken>;

export interface TokenVerifier {
  /**
   * Verifies signature, issuer, algorithm, `typ`, time claims and required claims, then checks
   * that `aud` contains `expectedAudience` (or the issuer's configured audience when omitted).
   */
  verify(token: string, expectedAudience?: string): Awaitable<VerifyResult>;
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

export type Permissionship = 'allowed' | 'denied' | 'conditional';

interface Permission {
  readonly permissionship: Permissionship;
  /** Answered from the decision cache. */
  readonly cached: boolean;
}

/** A failure is never cached: the next request asks SpiceDB again. */
export type PermissionAnswer = Result<Permission>;

export interface PermissionChecker {
  /** A cached answer comes back at once; one SpiceDB gives, as a promise. */
  check(query: PermissionQuery): Awaitable<PermissionAnswer>;
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
      /** The subject token's fingerprint (VerifiedToken.fingerprint), so caches never key on the token. */
      readonly subjectTokenFingerprint: string;
      /** The subject token's `sub`, as the verifier accepted it. */
      readonly subject: string;
    }
  | { readonly kind: 'on_behalf_of'; readonly audience: string; readonly user: string; readonly userType: string };

export type TokenResult = Result<IssuedToken>;

export interface TokenSource {
  readonly name: string;
  /** A cached token comes back at once; a token service's answer as a promise. */
  issue(request: TokenRequest): Awaitable<TokenResult>;
}
