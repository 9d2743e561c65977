/**
 * A caching decorator for any TokenSource (SPIRE's JWT-SVID practice):
 *   - refresh ahead, at ~refreshAtFraction of the token's remaining life with +/- jitter, in the
 *     background while the cached token keeps being served;
 *   - one fetch in flight per key; concurrent requests for a missing token wait for that fetch;
 *   - when a refresh fails the cached token is still served, but never past `exp - clockSkew`;
 *     after that the request gets the source's failure (a 503 for an outage) and never goes out
 *     without a token;
 *   - bounded (LRU) size.
 * A hit returns a promise created when the token was stored, so the hot path allocates nothing
 * and adds no promise chain of its own.
 *
 * lru-cache is the bounded store only. Its fetchMethod TTL and stale rules are not the JWT's
 * `exp`, and its fetch() adds a promise chain per hit; the `exp` check here is explicit.
 */
import { LRUCache } from 'lru-cache';
import type { Awaitable } from '../core/awaitable.js';
import type { IssuedToken, TokenRequest, TokenResult, TokenSource } from '../core/ports.js';
import { failure, settled, success } from '../core/result.js';
import type { Metrics } from '../observability/metrics.js';

export interface TokenCacheOptions {
  readonly maxEntries: number;
  readonly refreshAtFraction: number;
  readonly jitterFraction: number;
  readonly retrySeconds: number;
  readonly clockSkewSeconds: number;
  readonly metrics: Metrics;
  /** Epoch milliseconds. */
  readonly now?: () => number;
  /** In [0, 1). */
  readonly random?: () => number;
  /** How often the soonest-expiry gauge is updated and expired entries dropped; 0 disables. */
  readonly sweepIntervalMs?: number;
}

interface Entry {
  readonly token: IssuedToken;
  /** The answer handed to every hit. */
  readonly answer: TokenResult;
  /** The token is never served at or after this. */
  readonly serveUntilMs: number;
  refreshAtMs: number;
  /** A background refresh failed and has not succeeded since. */
  failing: boolean;
}

function cacheKey(source: string, request: TokenRequest): string {
  switch (request.kind) {
    case 'service':
      return `${source}\u0000s\u0000\u0000${request.audience}`;
    case 'exchange':
      return `${source}\u0000x\u0000${request.subjectTokenFingerprint}\u0000${request.audience}`;
    case 'on_behalf_of':
      return `${source}\u0000o\u0000${request.userType}:${request.user}\u0000${request.audience}`;
  }
}

export class CachingTokenSource implements TokenSource {
  readonly name: string;
  private readonly entries: LRUCache<string, Entry>;
  private readonly inflight = new Map<string, Promise<TokenResult>>();
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly skewMs: number;
  private readonly sweepTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly inner: TokenSource,
    private readonly options: TokenCacheOptions,
  ) {
    this.name = inner.name;
    this.entries = new LRUCache<string, Entry>({ max: options.maxEntries });
    this.now = options.now ?? Date.now;
    this.random = options.random ?? Math.random;
    this.skewMs = options.clockSkewSeconds * 1000;
    const sweepMs = options.sweepIntervalMs ?? 5000;
    if (sweepMs > 0) {
      this.sweepTimer = setInterval(() => this.sweep(), sweepMs);
      this.sweepTimer.unref();
    }
  }

  issue(request: TokenRequest): Awaitable<TokenResult> {
    const key = cacheKey(this.name, request);
    const now = this.now();
    const entry = this.entries.get(key);
    if (entry !== undefined && now < entry.serveUntilMs) {
      if (now >= entry.refreshAtMs && !this.inflight.has(key)) this.refresh(key, request, entry);
      if (entry.failing) this.options.metrics.tokenCacheEvents.inc({ event: 'stale_served' });
      else this.options.metrics.tokenCacheHits.inc();
      return entry.answer;
    }
    const pending = this.inflight.get(key);
    if (pending !== undefined) return pending;
    this.options.metrics.tokenCacheEvents.inc({ event: 'miss' });
    return this.fetch(key, request);
  }

  /** Number of cached tokens (for tests and diagnostics). */
  get size(): number {
    return this.entries.size;
  }

  close(): Promise<void> {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.entries.clear();
    return Promise.resolve();
  }

  private fetch(key: string, request: TokenRequest): Promise<TokenResult> {
    const pending = this.callInner(request).then((result): TokenResult => {
      this.inflight.delete(key);
      if (!result.ok) return result;
      return this.store(key, result.value) ?? failure('token_source_error', `issued token expires within the ${this.options.clockSkewSeconds}s clock-skew allowance`);
    });
    this.inflight.set(key, pending);
    return pending;
  }

  private refresh(key: string, request: TokenRequest, entry: Entry): void {
    this.options.metrics.tokenCacheEvents.inc({ event: 'refresh' });
    const pending = this.callInner(request).then((result): TokenResult => {
      this.inflight.delete(key);
      if (result.ok && this.store(key, result.value) !== undefined) return result;
      this.options.metrics.tokenCacheEvents.inc({ event: 'refresh_failure' });
      entry.failing = true;
      entry.refreshAtMs = this.now() + this.options.retrySeconds * 1000;
      // Requests that arrive once the old token is past serving wait on this promise: give them
      // the old token while it is still servable, else the failure.
      if (this.now() < entry.serveUntilMs) return success(entry.token);
      return result.ok ? failure('token_source_error', 'refreshed token expired within the clock-skew allowance') : result;
    });
    // Until the refresh lands, hits keep getting the cached token; the in-flight entry stops a
    // second refresh from starting.
    this.inflight.set(key, pending);
  }

  private callInner(request: TokenRequest): Promise<TokenResult> {
    // A token source always answers with a promise; settled() hands it back as one.
    return Promise.resolve(settled(() => this.inner.issue(request), 'token source'));
  }

  /** Stores a fresh token; returns the success answer, or undefined when it is already unservable. */
  private store(key: string, token: IssuedToken): TokenResult | undefined {
    const now = this.now();
    const serveUntilMs = token.expiresAt * 1000 - this.skewMs;
    if (serveUntilMs <= now) return undefined;
    const remaining = token.expiresAt * 1000 - now;
    const jitter = 1 + this.options.jitterFraction * (2 * this.random() - 1);
    const refreshAtMs = Math.min(now + remaining * this.options.refreshAtFraction * jitter, serveUntilMs);
    const answer: TokenResult = success(token);
    this.entries.set(key, { token, answer, serveUntilMs, refreshAtMs, failing: false });
    return answer;
  }

  /** Drops unservable entries (so user-derived tokens are not kept) and updates the expiry gauge. */
  sweep(): void {
    const now = this.now();
    let soonest = Infinity;
    const unservable: string[] = [];
    for (const [key, entry] of this.entries.entries()) {
      if (now >= entry.serveUntilMs) {
        if (!this.inflight.has(key)) unservable.push(key);
      } else {
        soonest = Math.min(soonest, entry.token.expiresAt * 1000);
      }
    }
    for (const key of unservable) this.entries.delete(key);
    this.options.metrics.setTokenCacheSoonestExpiry(soonest === Infinity ? undefined : (soonest - now) / 1000);
  }
}

/** Counts every token a source hands out or refuses, by source, request kind and result. */
export class MeteredTokenSource implements TokenSource {
  readonly name: string;

  constructor(
    private readonly inner: TokenSource,
    private readonly metrics: Metrics,
  ) {
    this.name = inner.name;
  }

  async issue(request: TokenRequest): Promise<TokenResult> {
    const result = await this.inner.issue(request);
    this.metrics.tokensIssued.inc({ source: this.name, kind: request.kind, result: result.ok ? 'ok' : result.reason });
    return result;
  }
}
