/**
 * Decorator: a bounded, short-lived cache of permission answers (allows, denies and conditional
 * answers alike), plus coalescing of identical checks in flight, so a burst of requests for one
 * resource costs one SpiceDB call. Only minimize_latency checks use it: fully_consistent and
 * at_least_as_fresh ask for data newer than any cache can promise.
 *
 * A hit in the last quarter of its TTL answers at once and refreshes the entry in the background.
 * Without that, every hot key expired every TTL and the requests arriving during the one SpiceDB
 * call that replaced it all waited for it: a stall per key per TTL, visible in the p99. No answer
 * is served older than the TTL: a refresh that fails leaves the entry to expire as before.
 */
import { LRUCache } from 'lru-cache';
import type { Closable, PermissionAnswer, PermissionChecker, Permissionship, PermissionQuery } from '../core/ports.js';
import { success, thrown } from '../core/result.js';
import type { Metrics } from '../observability/metrics.js';

const cachedAnswer = (permissionship: Permissionship): PermissionAnswer => Object.freeze(success(Object.freeze({ permissionship, cached: true })));
const CACHED: Readonly<Record<Permissionship, PermissionAnswer>> = {
  allowed: cachedAnswer('allowed'),
  denied: cachedAnswer('denied'),
  conditional: cachedAnswer('conditional'),
};

/**
 * Object types, ids and relations cannot contain `:`, `#`, `@` or a space (SpiceDB's patterns), so
 * this key is unambiguous; the context, when present, is appended in its rule's key order.
 */
function decisionKey(query: PermissionQuery): string {
  const { resource: r, subject: s } = query;
  const base = `${r.type}:${r.id}#${query.permission}@${s.type}:${s.id}#${s.relation ?? ''}`;
  return query.context === undefined ? base : `${base} ${JSON.stringify(query.context)}`;
}

/** Fraction of the TTL left below which a hit also refreshes its entry. */
const REFRESH_AHEAD_FRACTION = 0.25;

export class CachingChecker implements PermissionChecker, Closable {
  private readonly cache: LRUCache<string, PermissionAnswer> | undefined;
  private readonly inflight = new Map<string, Promise<PermissionAnswer>>();
  private readonly refreshBelowMs: number;

  constructor(
    private readonly inner: PermissionChecker & Closable,
    options: { readonly ttlMs: number; readonly maxEntries: number },
    private readonly metrics: Metrics,
  ) {
    this.refreshBelowMs = options.ttlMs * REFRESH_AHEAD_FRACTION;
    this.cache = options.ttlMs > 0 ? new LRUCache({ max: options.maxEntries, ttl: options.ttlMs }) : undefined;
    // Expired answers are otherwise kept until read again or evicted by the LRU bound.
    if (this.cache) {
      const cache = this.cache;
      this.purgeTimer = setInterval(() => cache.purgeStale(), Math.max(1000, options.ttlMs));
      this.purgeTimer.unref();
    }
  }

  private purgeTimer: NodeJS.Timeout | undefined;

  ready(): boolean {
    return this.inner.ready();
  }

  check(query: PermissionQuery): Promise<PermissionAnswer> {
    if (query.consistency.kind !== 'minimize_latency') return this.inner.check(query);
    const key = decisionKey(query);
    const hit = this.cache?.get(key);
    if (hit !== undefined) {
      this.metrics.decisionCache.inc({ event: 'hit' });
      if ((this.cache?.getRemainingTTL(key) ?? Infinity) < this.refreshBelowMs && !this.inflight.has(key)) {
        this.metrics.decisionCache.inc({ event: 'refresh' });
        void this.ask(key, query);
      }
      return Promise.resolve(hit);
    }
    const pending = this.inflight.get(key);
    if (pending !== undefined) {
      this.metrics.decisionCache.inc({ event: 'coalesced' });
      return pending;
    }
    this.metrics.decisionCache.inc({ event: 'miss' });
    return this.ask(key, query);
  }

  /** One SpiceDB call for `key`, shared by every identical check until it answers; never rejects. */
  private ask(key: string, query: PermissionQuery): Promise<PermissionAnswer> {
    const call = this.inner.check(query).then(
      (answer) => {
        this.inflight.delete(key);
        // Errors are never cached: the next request should try SpiceDB again.
        if (answer.ok) this.cache?.set(key, CACHED[answer.value.permissionship]);
        return answer;
      },
      (error: unknown) => {
        this.inflight.delete(key);
        return thrown(error, 'permission checker');
      },
    );
    this.inflight.set(key, call);
    return call;
  }

  async close(): Promise<void> {
    clearInterval(this.purgeTimer);
    this.cache?.clear();
    await this.inner.close();
  }
}
