/**
 * RFC 7662 token introspection: an opaque token is sent to its issuer, which says whether it is
 * active and whom it is for. Answers are cached by the token's SHA-256 (never the token) until the
 * token's `exp`, at most `cacheMaxSeconds`, and concurrent introspections of one token share one
 * call. An endpoint that cannot answer fails closed with `keys_unavailable` (503) and is never
 * cached; `active: false` is `token_inactive` (401).
 */
import type { Agent } from 'node:https';
import { LRUCache } from 'lru-cache';
import type { VerifiedToken } from '../core/ports.js';
import { failure as fail, success } from '../core/result.js';
import type { Result } from '../core/result.js';
import { resolveSecret } from '../base/secret.js';
import { describeNetworkFailure } from '../base/network-error.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { createClientTlsAgent } from '../base/tls-client-agent.js';
import type { IntrospectionConfig, IssuerConfig } from './config.js';
import { issuerRequest } from './issuer-http.js';
import type { IssuerAnswer } from './issuer-http.js';
import { audiencesOf, verifiedIdentity } from './verified-identity.js';

type Introspected = Result<VerifiedToken>;

export interface IntrospectionDeps {
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly baseDir: string;
  readonly cacheMaxEntries: number;
  /** Milliseconds since the epoch. */
  readonly now: () => number;
}

interface CachedAnswer {
  readonly result: Introspected;
  readonly validUntilMs: number;
}

const MAX_ANSWER_BYTES = 64 * 1024;

/** RFC 6749 2.3.1: client_id and secret are form-encoded before they are joined for HTTP Basic. */
function formEncoded(value: string): string {
  return new URLSearchParams([['', value]]).toString().slice(1);
}

export class TokenIntrospector {
  private readonly cache: LRUCache<string, CachedAnswer>;
  private readonly inflight = new Map<string, Promise<Introspected>>();
  private readonly agent: Agent | undefined;
  private readonly authorization: string | undefined;
  /** Whether the last call failed, so the log reports the change and not every failed request. */
  private failing = false;

  constructor(
    private readonly issuer: IssuerConfig,
    private readonly config: IntrospectionConfig,
    private readonly deps: IntrospectionDeps,
  ) {
    const where = `issuer ${issuer.name}: introspection`;
    try {
      if (config.clientSecret !== undefined) {
        const secret = resolveSecret(config.clientSecret, deps.baseDir);
        this.authorization = `Basic ${Buffer.from(`${formEncoded(config.clientId)}:${formEncoded(secret)}`).toString('base64')}`;
      }
      const usesTls = config.clientCertFile !== undefined || config.caFile !== undefined || config.serverName !== undefined;
      this.agent = usesTls ? createClientTlsAgent(config, { baseDir: deps.baseDir, keepAlive: true, maxSockets: 16 }) : undefined;
    } catch (error) {
      throw new Error(`${where}: ${(error as Error).message}`, { cause: error });
    }
    this.cache = new LRUCache<string, CachedAnswer>({ max: deps.cacheMaxEntries, ttlAutopurge: false });
  }

  /** The issuer's answer for `token` (whose SHA-256 is `fingerprint`), before any audience check. */
  introspect(token: string, fingerprint: string): Promise<Introspected> {
    const cached = this.cache.get(fingerprint);
    if (cached !== undefined && this.deps.now() < cached.validUntilMs) {
      this.deps.metrics.verifiedTokenCache.inc({ event: 'hit' });
      return Promise.resolve(cached.result);
    }
    this.deps.metrics.verifiedTokenCache.inc({ event: 'miss' });
    let pending = this.inflight.get(fingerprint);
    if (pending === undefined) {
      pending = this.ask(token, fingerprint).finally(() => this.inflight.delete(fingerprint));
      this.inflight.set(fingerprint, pending);
    }
    return pending;
  }

  // Stryker disable next-line BlockStatement: memory only; the cache never returns an entry past its ttl, purged or not
  purgeStale(): void {
    this.cache.purgeStale();
  }

  close(): void {
    this.agent?.destroy();
    this.cache.clear();
  }

  private async ask(token: string, fingerprint: string): Promise<Introspected> {
    const form = new URLSearchParams({ token, token_type_hint: 'access_token' });
    // With a client certificate the client still names itself (RFC 8705 section 2).
    if (this.authorization === undefined) form.set('client_id', this.config.clientId);
    const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };
    if (this.authorization !== undefined) headers.authorization = this.authorization;
    let answer: IssuerAnswer;
    try {
      answer = await issuerRequest(this.config.endpoint, {
        method: 'POST',
        headers,
        body: form.toString(),
        agent: this.agent,
        timeoutMs: this.config.timeoutMs,
        maxBytes: MAX_ANSWER_BYTES,
      });
    } catch (error) {
      return this.unavailable(`introspection endpoint unreachable: ${describeNetworkFailure(error).text}`);
    }
    const document = this.parse(answer);
    if (typeof document === 'string') return this.unavailable(document);
    this.recovered();
    const nowMs = this.deps.now();
    const maxUntilMs = nowMs + this.config.cacheMaxSeconds * 1000;
    if (document.active !== true) {
      this.deps.metrics.introspections.inc({ issuer: this.issuer.name, result: 'inactive' });
      // An inactive token does not become active again (RFC 7662 2.2), so the answer is kept too:
      // a caller replaying a revoked token does not cost a call each time.
      const result = fail('token_inactive', `issuer ${this.issuer.name} says the token is not active`);
      this.remember(fingerprint, result, maxUntilMs);
      return result;
    }
    this.deps.metrics.introspections.inc({ issuer: this.issuer.name, result: 'active' });
    const result = this.accept(document, fingerprint, nowMs);
    if (result.ok) this.remember(fingerprint, result, Math.min(maxUntilMs, result.value.expiresAt * 1000));
    return result;
  }

  private remember(fingerprint: string, result: Introspected, validUntilMs: number): void {
    const ttl = validUntilMs - this.deps.now();
    if (ttl > 0) this.cache.set(fingerprint, { result, validUntilMs }, { ttl });
  }

  /** The answer's JSON object, or why it is not a usable answer. */
  private parse(answer: IssuerAnswer): Record<string, unknown> | string {
    if (answer.status === 401 || answer.status === 403) {
      return `introspection endpoint refused this sidecar's client credentials (HTTP ${answer.status}); check introspection.clientId and its secret or certificate`;
    }
    if (answer.status !== 200) return `introspection endpoint answered HTTP ${answer.status}`;
    if (answer.text === undefined) return 'introspection answer larger than 64 KiB';
    let document: unknown;
    try {
      document = JSON.parse(answer.text);
    } catch {
      return 'introspection answer is not JSON';
    }
    if (document === null || typeof document !== 'object' || Array.isArray(document)) return 'introspection answer is not a JSON object';
    const active = (document as Record<string, unknown>).active;
    if (typeof active !== 'boolean') return 'introspection answer has no boolean "active"';
    return document as Record<string, unknown>;
  }

  /** The checks a JWT's claims get, applied to an active token's introspected claims. */
  private accept(claims: Record<string, unknown>, fingerprint: string, nowMs: number): Introspected {
    const config = this.issuer;
    const skew = config.clockSkewSeconds;
    const nowSeconds = nowMs / 1000;
    if (claims.iss !== undefined && claims.iss !== config.issuer) return fail('unknown_issuer', 'introspection answer names another iss');
    const { exp, nbf, iat } = claims;
    if (typeof exp !== 'number' || !Number.isFinite(exp)) return fail('invalid_claim', 'introspection answer has no numeric exp');
    if (exp + skew <= nowSeconds) return fail('token_expired');
    if (typeof nbf === 'number' && nbf - skew > nowSeconds) return fail('token_not_yet_valid');
    if (config.maxLifetimeSeconds !== undefined) {
      if (typeof iat !== 'number') return fail('missing_claim', 'missing iat');
      if (exp - iat > config.maxLifetimeSeconds || iat + config.maxLifetimeSeconds + skew < nowSeconds) return fail('token_too_old');
    }
    const missing = config.requiredClaims.find((claim) => claims[claim] === undefined);
    if (missing !== undefined) return fail('missing_claim', `missing ${missing}`);
    // RFC 7662 makes sub optional; a client-credentials token's subject is its client (RFC 9068 2.2).
    const subject = typeof claims.sub === 'string' && claims.sub !== '' ? claims.sub : claims.client_id;
    if (typeof subject !== 'string' || subject === '') return fail('invalid_claim', 'introspection answer has neither sub nor client_id');
    let audience = audiencesOf(claims);
    if (audience === undefined) {
      if (claims.aud !== undefined) return fail('wrong_audience', 'aud is not a string or strings');
      // Without `aud` the issuer did not restrict the token; it counts as issued for this issuer's audience.
      audience = [config.audience];
    }
    const { active: _active, ...rest } = claims;
    return success(verifiedIdentity(config, { claims: rest, subject, audience, expiresAt: exp, fingerprint }));
  }

  private unavailable(detail: string): Introspected {
    this.deps.metrics.introspections.inc({ issuer: this.issuer.name, result: 'failure' });
    if (!this.failing) this.deps.logger.warn({ issuer: this.issuer.name, endpoint: this.config.endpoint, error: detail }, 'token introspection failing: opaque tokens get keys_unavailable (503)');
    this.failing = true;
    return fail('keys_unavailable', detail);
  }

  private recovered(): void {
    if (this.failing) this.deps.logger.info({ issuer: this.issuer.name, endpoint: this.config.endpoint }, 'token introspection answering again');
    this.failing = false;
  }
}
