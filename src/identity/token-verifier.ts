/**
 * Verifies inbound JWTs against the configured issuers. Results are cached by the token's
 * SHA-256 until the token stops being valid or its key leaves the issuer's JWKS, so a repeated
 * token costs a hash and a map lookup, not a signature check. The audience is checked per call,
 * after the cache, because the same token may be presented on routes expecting different
 * audiences.
 *
 * A token without a JWT's shape is opaque: it goes to the one issuer with `introspection`, if
 * there is one (the config allows at most one, since an opaque token does not name its issuer),
 * and is otherwise malformed_token.
 */
import type { Awaitable } from '../core/awaitable.js';
import { createHash } from 'node:crypto';
import { errors, jwtVerify } from 'jose';
import { LRUCache } from 'lru-cache';
import type { Closable, TokenVerifier, VerifiedToken, VerifyResult } from '../core/ports.js';
import { failure as fail, success } from '../core/result.js';
import type { Failure } from '../core/result.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { Algorithm, IssuerConfig, IssuersConfig } from './config.js';
import { TokenIntrospector } from './introspection.js';
import { IssuerKeys } from './issuer-keys.js';
import type { BoundKey } from './issuer-keys.js';
import { hasCompactJwsShape, peekJwt } from './jwt-peek.js';
import { audiencesOf, verifiedIdentity } from './verified-identity.js';

export interface TokenVerifierDeps {
  metrics: Metrics;
  logger: Logger;
  baseDir: string;
  fetchTimeoutMs?: number;
  /** Bound on cached verified tokens (default 10,000). */
  cacheMaxEntries?: number;
  /** Milliseconds since the epoch; tests move the clock. */
  now?: () => number;
  /** The verifier this one replaces: an issuer configured the same starts from its keys. */
  previous?: VerifierAdapter;
}

/** Which issuers cannot verify a JWT yet: what readiness and `check` name. */
interface IssuerReadiness {
  /** Issuers with a JWKS source and no usable key yet, by name, in configuration order. */
  issuersWithoutKeys(): Array<{ readonly name: string; readonly required: boolean }>;
}

/** The verifier as the life cycle holds it: it closes, reports per issuer, and hands its keys on. */
export interface VerifierAdapter extends TokenVerifier, Closable, IssuerReadiness {
  /** The keys of the issuer configured exactly as `config`, for a verifier that replaces this one. */
  keysFor(config: IssuerConfig): IssuerKeys | undefined;
}

interface Issuer {
  readonly config: IssuerConfig;
  /** Undefined for an issuer that only introspects opaque tokens. */
  readonly keys: IssuerKeys | undefined;
  readonly allowed: ReadonlySet<string>;
  readonly requiredClaims: readonly string[];
}

interface CachedToken {
  readonly token: VerifiedToken;
  /** The answer (the token, or wrong_audience) for the issuer's own audience: a hit on the common path allocates nothing. */
  readonly verified: VerifyResult;
  /** Milliseconds since the epoch after which the cached verification no longer holds. */
  readonly validUntilMs: number;
  readonly audience: string;
  /** The key that verified it, and the issuer's key set it must still be in. */
  readonly key: BoundKey;
  readonly keys: IssuerKeys;
}

/** How often expired verified tokens are dropped from the cache. */
const PURGE_INTERVAL_MS = 30_000;

/** Maps jose's errors to our reasons; anything unexpected is a malformed token, never an allow. */
function reasonFor(error: unknown): Failure {
  if (error instanceof errors.JWTExpired) {
    return error.claim === 'iat' ? fail('token_too_old', 'older than maxLifetimeSeconds') : fail('token_expired');
  }
  if (error instanceof errors.JWTClaimValidationFailed) {
    if (error.reason === 'missing') return fail('missing_claim', `missing ${error.claim}`);
    switch (error.claim) {
      case 'nbf':
        return fail('token_not_yet_valid');
      case 'iat':
        return error.reason === 'check_failed' ? fail('token_not_yet_valid', 'iat in the future') : fail('invalid_claim', 'iat');
      case 'typ':
        return fail('wrong_token_type');
      // Stryker disable all: unreachable; jwtVerify gets the issuer this token's own iss selected, and no audience (checkAudience does that)
      case 'iss':
        return fail('unknown_issuer');
      case 'aud':
        return fail('wrong_audience');
      // Stryker restore all
      default:
        return fail('invalid_claim', error.claim);
    }
  }
  if (error instanceof errors.JWSSignatureVerificationFailed) return fail('bad_signature');
  if (error instanceof errors.JOSEAlgNotAllowed || error instanceof errors.JOSENotSupported) return fail('disallowed_algorithm');
  if (error instanceof errors.JWTInvalid || error instanceof errors.JWSInvalid) return fail('malformed_token', error.message);
  return fail('malformed_token', error instanceof Error ? error.name : 'unknown error');
}

class JoseTokenVerifier implements VerifierAdapter {
  private readonly cache: LRUCache<string, CachedToken>;

  constructor(
    private readonly byIss: ReadonlyMap<string, Issuer>,
    private readonly introspector: { readonly config: IssuerConfig; readonly client: TokenIntrospector } | undefined,
    private readonly deps: TokenVerifierDeps & { now: () => number },
  ) {
    // Stryker disable next-line BooleanLiteral: memory only; an entry is never served past its validity (verify checks validUntilMs), purged or not
    this.cache = new LRUCache<string, CachedToken>({ max: deps.cacheMaxEntries ?? 10_000, ttlAutopurge: false });
    // Expired entries are otherwise only dropped when read again or evicted by the LRU bound, so
    // verified claims of tokens never seen again would sit in memory until 10,000 others arrive.
    // Stryker disable all: memory only; the caches never return an entry past its ttl, purged or not
    this.purgeTimer = setInterval(() => {
      this.cache.purgeStale();
      this.introspector?.client.purgeStale();
    }, PURGE_INTERVAL_MS);
    // Stryker restore all
    this.purgeTimer.unref();
  }

  private readonly purgeTimer: NodeJS.Timeout;

  ready(): boolean {
    // An introspecting issuer has nothing to load: whether its endpoint answers is a per-request
    // matter. One marked `required: false` does not hold the pod back: its own tokens get
    // keys_unavailable until its keys arrive, and every other issuer's tokens are served.
    return this.issuersWithoutKeys().every((issuer) => !issuer.required);
  }

  keysFor(config: IssuerConfig): IssuerKeys | undefined {
    const issuer = this.byIss.get(config.issuer);
    return issuer !== undefined && JSON.stringify(issuer.config) === JSON.stringify(config) ? issuer.keys : undefined;
  }

  issuersWithoutKeys(): Array<{ readonly name: string; readonly required: boolean }> {
    const missing: Array<{ name: string; required: boolean }> = [];
    for (const issuer of this.byIss.values()) if (issuer.keys !== undefined && !issuer.keys.hasKeys()) missing.push({ name: issuer.config.name, required: issuer.config.required });
    return missing;
  }

  close(): Promise<void> {
    clearInterval(this.purgeTimer);
    for (const issuer of this.byIss.values()) issuer.keys?.close();
    this.introspector?.client.close();
    this.cache.clear();
    return Promise.resolve();
  }

  verify(token: string, expectedAudience?: string): Awaitable<VerifyResult> {
    const hash = createHash('sha256').update(token).digest('base64url');
    const cached = this.cache.get(hash);
    if (cached !== undefined) {
      if (this.deps.now() < cached.validUntilMs && cached.keys.stillHas(cached.key)) {
        this.deps.metrics.verifiedTokenHits.inc();
        if (expectedAudience === undefined || expectedAudience === cached.audience) return cached.verified;
        return checkAudience(cached.token, cached.audience, expectedAudience);
      }
      this.cache.delete(hash);
    }
    if (!hasCompactJwsShape(token)) return this.introspect(token, hash, expectedAudience);
    this.deps.metrics.verifiedTokenCache.inc({ event: 'miss' });
    return this.verifyUncached(token, hash, expectedAudience);
  }

  /** An opaque token: its introspecting issuer's answer (cached there), then the audience as for a JWT. */
  private async introspect(token: string, hash: string, expectedAudience: string | undefined): Promise<VerifyResult> {
    if (this.introspector === undefined) return fail('malformed_token', 'not a JWT, and no issuer introspects opaque tokens');
    const answer = await this.introspector.client.introspect(token, hash);
    return answer.ok ? checkAudience(answer.value, this.introspector.config.audience, expectedAudience) : answer;
  }

  private async verifyUncached(token: string, hash: string, expectedAudience: string | undefined): Promise<VerifyResult> {
    try {
      const peeked = peekJwt(token);
      if (!peeked.ok) return peeked;
      const { alg, kid, iss } = peeked.value;
      if (iss === undefined) return fail('missing_claim', 'missing iss');
      const issuer = this.byIss.get(iss);
      if (!issuer) return fail('unknown_issuer');
      if (issuer.keys === undefined) return fail('unknown_key', `issuer ${issuer.config.name} takes opaque tokens only (no jwks)`);
      if (!issuer.allowed.has(alg)) return fail('disallowed_algorithm', `alg ${alg.slice(0, 16)} not allowed for ${issuer.config.name}`);
      const lookup = await issuer.keys.lookup(kid, alg as Algorithm);
      if (!lookup.ok) return lookup;

      const config = issuer.config;
      const nowMs = this.deps.now();
      const { payload } = await jwtVerify(token, lookup.value.key, {
        algorithms: [lookup.value.alg],
        issuer: config.issuer,
        clockTolerance: config.clockSkewSeconds,
        requiredClaims: issuer.requiredClaims as string[],
        currentDate: new Date(nowMs),
        ...(config.typ !== undefined ? { typ: config.typ } : {}),
        ...(config.maxLifetimeSeconds !== undefined ? { maxTokenAge: config.maxLifetimeSeconds } : {}),
      });

      if (typeof payload.sub !== 'string' || payload.sub === '') return fail('invalid_claim', 'sub is not a non-empty string');
      if (typeof payload.exp !== 'number') return fail('invalid_claim', 'exp');
      const aud = audiencesOf(payload);
      if (!aud) return fail('wrong_audience', 'aud missing or not strings');
      // Stryker disable next-line ArithmeticOperator: a shorter cached validity only sends the token back to jose, which applies the same skew (cache hits drop; no decision changes)
      const skewMs = config.clockSkewSeconds * 1000;
      // Stryker disable next-line ArithmeticOperator: as above (both mutants shorten it); a validity past exp + skew is what identity-expiry-boundary.test.ts refuses
      let validUntilMs = payload.exp * 1000 + skewMs;
      if (config.maxLifetimeSeconds !== undefined && typeof payload.iat === 'number') {
        if (payload.exp - payload.iat > config.maxLifetimeSeconds) return fail('token_too_old', 'lifetime exceeds maxLifetimeSeconds');
        validUntilMs = Math.min(validUntilMs, (payload.iat + config.maxLifetimeSeconds) * 1000 + skewMs);
      }

      const verified = verifiedIdentity(config, { claims: payload, subject: payload.sub, audience: aud, expiresAt: payload.exp, fingerprint: hash });
      const entry: CachedToken = { token: verified, verified: checkAudience(verified, config.audience, undefined), validUntilMs, audience: config.audience, key: lookup.value, keys: issuer.keys };
      // Stryker disable next-line ArithmeticOperator: the LRU ttl only bounds memory; verify() checks validUntilMs before serving an entry
      const ttl = validUntilMs - nowMs;
      // Stryker disable next-line ObjectLiteral: as above; an entry cached without a ttl is never served past validUntilMs either
      if (ttl > 0) this.cache.set(hash, entry, { ttl });
      return checkAudience(verified, config.audience, expectedAudience);
    } catch (error) {
      return reasonFor(error);
    }
  }
}

export async function createTokenVerifier(
  issuers: IssuersConfig,
  deps: TokenVerifierDeps,
): Promise<VerifierAdapter> {
  const now = deps.now ?? Date.now;
  const fetchTimeoutMs = deps.fetchTimeoutMs ?? 5000;
  const byIss = new Map<string, Issuer>();
  let introspector: { config: IssuerConfig; client: TokenIntrospector } | undefined;
  const cacheMaxEntries = deps.cacheMaxEntries ?? 10_000;
  const closeAll = (): void => {
    for (const issuer of byIss.values()) issuer.keys?.close();
    introspector?.client.close();
  };
  try {
    for (const config of issuers) {
      const keys = config.jwks && new IssuerKeys(config, config.jwks, { metrics: deps.metrics, logger: deps.logger, baseDir: deps.baseDir, fetchTimeoutMs, now });
      const carried = deps.previous?.keysFor(config);
      if (keys !== undefined && carried !== undefined) keys.carryOver(carried);
      // exp bounds the cache entry and sub is the subject: both are always required.
      const requiredClaims = [...new Set(['exp', 'sub', ...config.requiredClaims])];
      byIss.set(config.issuer, { config, keys, allowed: new Set(config.algorithms), requiredClaims });
      if (config.introspection !== undefined) {
        const client = new TokenIntrospector(config, config.introspection, { metrics: deps.metrics, logger: deps.logger, baseDir: deps.baseDir, cacheMaxEntries, now });
        introspector = { config, client };
      }
    }
  } catch (error) {
    closeAll();
    throw error;
  }
  const verifier = new JoseTokenVerifier(byIss, introspector, { ...deps, now });
  try {
    await Promise.all([...byIss.values()].map((issuer) => issuer.keys?.start()));
  } catch (error) {
    await verifier.close();
    throw error;
  }
  return verifier;
}

function checkAudience(token: VerifiedToken, issuerAudience: string, expected: string | undefined): VerifyResult {
  const want = expected ?? issuerAudience;
  if (!token.audience.includes(want)) return fail('wrong_audience', `token not for ${want}`);
  return success(token);
}
