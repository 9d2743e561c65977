/**
 * Decorator: a bounded cache of permission answers (allows, denies and conditional answers alike),
 * plus coalescing of identical checks in flight, so a burst of requests for one resource costs one
 * SpiceDB call. Only minimize_latency checks use it: fully_consistent and at_least_as_fresh ask
 * for data newer than any cache can promise.
 *
 * Freshness comes in two modes:
 * - `ttl`: an answer lives `ttlMs`.
 * - `watch`: a change feed (SpiceDB's Watch) drops every answer a change could affect
 *   (invalidation.ts), so an answer may live `watchTtlMs`. While the feed is not live, every answer
 *   falls back to `ttlMs` from when it was filled, as in ttl mode. Answers that may rest on a
 *   relationship `with expiration` keep `ttlMs` too: SpiceDB's Watch says nothing when one lapses.
 *   For `quantizationWindowMs` after a change, misses ask SpiceDB at_least_as_fresh that change:
 *   a minimize_latency read could otherwise refill an answer from a snapshot before it.
 *
 * A hit in the last quarter of its lifetime answers at once and refreshes the entry in the
 * background, so a hot key never stalls the requests arriving while it is replaced. A refresh that
 * fails leaves the entry to expire as before.
 */
import { LRUCache } from 'lru-cache';
import type { Awaitable } from '../core/awaitable.js';
import type { Closable, Consistency, PermissionAnswer, PermissionChecker, Permissionship, PermissionQuery } from '../core/ports.js';
import { success, thrown } from '../core/result.js';
import type { Metrics } from '../observability/metrics.js';
import type { ChangeFeed, ChangeFeedEvent, WatchState } from './change-feed.js';
import { affects, cachedDecision, InvalidationIndex } from './invalidation.js';
import type { CachedDecision } from './invalidation.js';
import { SchemaDependencies } from './permission-dependencies.js';
import type { PermissionDependencies } from './permission-dependencies.js';

const cachedAnswer = (permissionship: Permissionship): PermissionAnswer => Object.freeze(success(Object.freeze({ permissionship, cached: true })));
const CACHED: Readonly<Record<Permissionship, PermissionAnswer>> = {
  allowed: cachedAnswer('allowed'),
  denied: cachedAnswer('denied'),
  conditional: cachedAnswer('conditional'),
};
const MINIMIZE_LATENCY: Consistency = Object.freeze({ kind: 'minimize_latency' });

/**
 * Object types, ids and relations cannot contain `:`, `#`, `@` or a space (SpiceDB's patterns), so
 * this key is unambiguous; the context, when present, is appended in its rule's key order.
 */
function decisionKey(query: PermissionQuery): string {
  const { resource: r, subject: s } = query;
  const base = `${r.type}:${r.id}#${query.permission}@${s.type}:${s.id}#${s.relation ?? ''}`;
  return query.context === undefined ? base : `${base} ${JSON.stringify(query.context)}`;
}

const WATCH_STATES: readonly WatchState[] = ['connecting', 'live', 'down'];

/** Fraction of the lifetime left below which a hit also refreshes its entry. */
const REFRESH_AHEAD_FRACTION = 0.25;

export interface DecisionCacheOptions {
  readonly freshness: 'watch' | 'ttl';
  readonly ttlMs: number;
  readonly watchTtlMs: number;
  readonly quantizationWindowMs: number;
  readonly requireWatch: boolean;
  readonly maxEntries: number;
}

interface Entry {
  readonly answer: PermissionAnswer;
  readonly decision: CachedDecision;
  readonly filledAt: number;
  /**
   * Never outlives ttlMs: it may rest on a relationship that can lapse unseen, or it was asked
   * before the Watch's start revision, so changes between its snapshot and that are not delivered.
   */
  readonly shortLived: boolean;
  /** The feed's start the answer was asked after. */
  readonly start: number;
}

/** One SpiceDB call for a key; `superseded` once a change (or a reset) made its answer unfit to cache. */
interface Fill {
  readonly answer: Promise<PermissionAnswer>;
  readonly decision: CachedDecision;
  readonly start: number;
  superseded: boolean;
}

export class CachingChecker implements PermissionChecker, Closable {
  readonly #cache: LRUCache<string, Entry> | undefined;
  readonly #inflight = new Map<string, Fill>();
  readonly #index: InvalidationIndex;
  readonly #dependencies = new SchemaDependencies();
  readonly #lookup = (permission: string): PermissionDependencies | undefined => this.#dependencies.of(permission);
  readonly #purgeTimer: NodeJS.Timeout | undefined;
  readonly #unsubscribe: (() => void) | undefined;
  #feedLive = false;
  /** Counts the feed's starts: an answer asked before the latest is bounded by ttlMs. */
  #start = 0;
  /** Until `until`, misses ask at least as fresh as the newest change seen. */
  #freshFloor: { readonly consistency: Consistency; readonly until: number } | undefined;

  constructor(
    private readonly inner: PermissionChecker & Closable,
    private readonly options: DecisionCacheOptions,
    private readonly metrics: Metrics,
    /** Required in watch mode. */
    feed?: ChangeFeed,
    /** Closed with this cache: the Watch it follows, when the cache's owner opened one for it. */
    private readonly owned?: Closable,
  ) {
    this.#index = new InvalidationIndex(this.#lookup);
    // ttlMs 0 disables caching in both modes: nothing could be served while the feed is down.
    if (options.ttlMs > 0) {
      this.#cache = new LRUCache<string, Entry>({
        max: options.maxEntries,
        // Every way an entry leaves (evicted, dropped, replaced) takes it out of the index.
        dispose: (entry) => this.#index.remove(entry.decision),
      });
      // Expired answers are otherwise kept until read again or evicted by the LRU bound.
      this.#purgeTimer = setInterval(() => this.#purgeExpired(), Math.max(1000, options.ttlMs));
      this.#purgeTimer.unref();
    }
    if (options.freshness === 'watch') {
      if (feed === undefined) throw new Error('the watch freshness mode needs a change feed');
      this.#unsubscribe = feed.subscribe((event) => this.#onFeed(event));
    }
  }

  ready(): boolean {
    return this.inner.ready() && (!this.options.requireWatch || this.options.freshness !== 'watch' || this.#feedLive);
  }

  check(query: PermissionQuery): Awaitable<PermissionAnswer> {
    if (query.consistency.kind !== 'minimize_latency') return this.inner.check(query);
    const key = decisionKey(query);
    const entry = this.#cache?.get(key);
    if (entry !== undefined) {
      const lifetime = this.#lifetime(entry);
      const left = lifetime - (Date.now() - entry.filledAt);
      if (left > 0) {
        this.metrics.decisionCacheHits.inc();
        if (left < lifetime * REFRESH_AHEAD_FRACTION && !this.#inflight.has(key)) {
          this.metrics.decisionCache.inc({ event: 'refresh' });
          void this.#fill(key, query, entry.decision);
        }
        return entry.answer;
      }
      this.#cache?.delete(key);
    }
    const pending = this.#inflight.get(key);
    if (pending !== undefined) {
      this.metrics.decisionCache.inc({ event: 'coalesced' });
      return pending.answer;
    }
    this.metrics.decisionCache.inc({ event: 'miss' });
    return this.#fill(key, query, cachedDecision(key, query));
  }

  #lifetime(entry: Entry): number {
    return this.#feedLive && !entry.shortLived && entry.start === this.#start ? this.options.watchTtlMs : this.options.ttlMs;
  }

  /** One SpiceDB call for `key`, shared by every identical check until it answers; never rejects. */
  #fill(key: string, query: PermissionQuery, decision: CachedDecision): Promise<PermissionAnswer> {
    const floor = this.#freshFloor;
    const consistency = floor !== undefined && Date.now() < floor.until ? floor.consistency : MINIMIZE_LATENCY;
    const asked = consistency === MINIMIZE_LATENCY ? query : { ...query, consistency };
    const answer = Promise.resolve(this.inner.check(asked)).then(
      (answer) => {
        if (this.#inflight.get(key) === fill) this.#inflight.delete(key);
        // Errors are never cached: the next request should try SpiceDB again.
        if (answer.ok && !fill.superseded && this.#cache !== undefined) {
          const shortLived = this.#dependencies.of(decision.permission)?.expiring ?? false;
          this.#cache.set(key, { answer: CACHED[answer.value.permissionship], decision, filledAt: Date.now(), shortLived, start: fill.start });
          this.#index.add(decision);
        }
        return answer;
      },
      (error: unknown) => {
        if (this.#inflight.get(key) === fill) this.#inflight.delete(key);
        return thrown(error, 'permission checker');
      },
    );
    const fill: Fill = { answer, decision, start: this.#start, superseded: false };
    this.#inflight.set(key, fill);
    return answer;
  }

  #onFeed(event: ChangeFeedEvent): void {
    switch (event.kind) {
      case 'state':
        this.#feedLive = event.state === 'live';
        for (const state of WATCH_STATES) this.metrics.spicedbWatch.set({ state }, state === event.state ? 1 : 0);
        return;
      case 'reset':
        this.#start++;
        this.#dependencies.load(event.schemaText);
        this.#raiseFloor(event.revision, event.receivedAt);
        // At start-up the answers so far were asked while nothing was watched, and are bounded by
        // ttlMs as in ttl mode (their start is now an old one). After a refused cursor or a schema
        // change, changes were missed or every dependency may differ: drop everything.
        if (event.why === 'start') return;
        for (const fill of this.#inflight.values()) fill.superseded = true;
        this.#inflight.clear();
        this.metrics.decisionCacheInvalidations.inc({ scope: 'all' }, this.#cache?.size ?? 0);
        // Each entry's dispose takes it out of the index.
        this.#cache?.clear();
        return;
      case 'changes':
        this.metrics.spicedbWatchUpdates.inc(event.changes.length);
        for (const change of event.changes) {
          const affected = this.#index.affected(change);
          for (const decision of affected) this.#cache?.delete(decision.key);
          this.metrics.decisionCacheInvalidations.inc({ scope: 'change' }, affected.size);
          for (const [key, fill] of this.#inflight) {
            if (!affects(change, fill.decision, this.#lookup)) continue;
            // Checks arriving from now on must not join an answer read before the change.
            fill.superseded = true;
            this.#inflight.delete(key);
          }
        }
        this.#raiseFloor(event.revision, event.receivedAt);
        return;
    }
  }

  #raiseFloor(revision: string, receivedAt: number): void {
    this.#freshFloor = { consistency: { kind: 'at_least_as_fresh', zedToken: revision }, until: receivedAt + this.options.quantizationWindowMs };
  }

  #purgeExpired(): void {
    const cache = this.#cache;
    if (cache === undefined) return;
    const now = Date.now();
    for (const [key, entry] of cache.entries()) if (now - entry.filledAt >= this.#lifetime(entry)) cache.delete(key);
  }

  async close(): Promise<void> {
    clearInterval(this.#purgeTimer);
    this.#unsubscribe?.();
    this.#cache?.clear();
    await this.owned?.close();
    await this.inner.close();
  }
}
