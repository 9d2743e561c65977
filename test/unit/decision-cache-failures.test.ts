/**
 * The decision cache never keeps what it cannot trust: a check that failed (even by throwing) is
 * asked again by the next request, and an answer in flight when the Watch starts over is neither
 * cached nor shared with checks arriving after. The cache is driven directly, around a backend the
 * test controls, and a change feed the test publishes to.
 */
import { describe, expect, it } from 'vitest';
import type { Closable, PermissionAnswer, PermissionChecker, PermissionQuery } from '../../src/core/ports.js';
import { Metrics } from '../../src/observability/metrics.js';
import { FeedReplay } from '../../src/spicedb/change-feed.js';
import { spicedbSchema } from '../../src/spicedb/config.js';
import { CachingChecker } from '../../src/spicedb/decision-cache.js';

const SCHEMA = `
definition user {}
definition cloud {
    relation viewer: user
    permission view = viewer
}
`;

/** A backend whose calls wait until the test settles them: with an answer, or by throwing. */
class HeldBackend implements PermissionChecker, Closable {
  readonly calls: PermissionQuery[] = [];
  private readonly held: Array<{ resolve: (answer: PermissionAnswer) => void; reject: (error: Error) => void }> = [];
  check(query: PermissionQuery): Promise<PermissionAnswer> {
    this.calls.push(query);
    return new Promise((resolve, reject) => this.held.push({ resolve, reject }));
  }
  answer(permissionship: 'allowed' | 'denied'): void {
    for (const call of this.held.splice(0)) call.resolve({ ok: true, value: { permissionship, cached: false } });
  }
  /** Settles only the `index`-th call still held. */
  answerOne(index: number, permissionship: 'allowed' | 'denied'): void {
    this.held.splice(index, 1)[0]?.resolve({ ok: true, value: { permissionship, cached: false } });
  }
  fail(message: string): void {
    for (const call of this.held.splice(0)) call.reject(new Error(message));
  }
  ready(): boolean {
    return true;
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

const view = (id: string): PermissionQuery => ({
  resource: { type: 'cloud', id },
  permission: 'view',
  subject: { type: 'user', id: 'alice' },
  consistency: { kind: 'minimize_latency' },
});

function cache(decisionCache: Record<string, unknown>, feed?: FeedReplay) {
  const backend = new HeldBackend();
  const options = spicedbSchema.parse({ decisionCache: { quantizationWindowMs: 0, ...decisionCache } }).decisionCache;
  return { backend, checker: new CachingChecker(backend, options, new Metrics({ processMetrics: false }), feed) };
}

describe('the decision cache and failures', () => {
  it('answers a check whose backend throws with a failure, shares it with the checks that joined, and asks again next time', async () => {
    const { backend, checker } = cache({ freshness: 'ttl', ttlMs: 60_000 });
    const first = checker.check(view('cl0'));
    const joined = checker.check(view('cl0'));
    expect(backend.calls).toHaveLength(1);
    backend.fail('connection reset');
    expect(await first).toMatchObject({ ok: false, reason: 'internal_error' });
    expect(await joined).toMatchObject({ ok: false, reason: 'internal_error' });
    const again = checker.check(view('cl0'));
    expect(backend.calls).toHaveLength(2);
    backend.answer('allowed');
    expect(await again).toEqual({ ok: true, value: { permissionship: 'allowed', cached: false } });
    expect(await checker.check(view('cl0'))).toEqual({ ok: true, value: { permissionship: 'allowed', cached: true } });
  });

  it('refuses watch freshness without a change feed', () => {
    expect(() => cache({ freshness: 'watch' })).toThrow('the watch freshness mode needs a change feed');
  });

  it('is ready without a Watch in ttl mode, even with requireWatch set; in watch mode only once the Watch is live', () => {
    expect(cache({ freshness: 'ttl', requireWatch: true }).checker.ready()).toBe(true);
    const feed = new FeedReplay();
    const { checker } = cache({ freshness: 'watch', requireWatch: true }, feed);
    expect(checker.ready()).toBe(false);
    feed.publish({ kind: 'state', state: 'live' });
    expect(checker.ready()).toBe(true);
    feed.publish({ kind: 'state', state: 'down' });
    expect(checker.ready()).toBe(false);
    expect(cache({ freshness: 'watch', requireWatch: false }, new FeedReplay()).checker.ready()).toBe(true);
  });

  it('caches nothing with ttlMs 0, in either mode', async () => {
    for (const freshness of ['ttl', 'watch'] as const) {
      const feed = new FeedReplay();
      const { backend, checker } = cache({ freshness, ttlMs: 0 }, feed);
      // Even with the Watch live, when answers would otherwise live watchTtlMs.
      feed.publish({ kind: 'reset', why: 'start', revision: 'r0', schemaText: SCHEMA, receivedAt: Date.now() });
      feed.publish({ kind: 'state', state: 'live' });
      for (let i = 0; i < 2; i++) {
        const answer = checker.check(view('cl0'));
        backend.answer('allowed');
        expect(await answer).toMatchObject({ value: { cached: false } });
      }
      expect(backend.calls).toHaveLength(2);
    }
  });

  it('does not cache or share an answer in flight when the Watch starts over', async () => {
    const feed = new FeedReplay();
    const { backend, checker } = cache({ freshness: 'watch', ttlMs: 60_000 }, feed);
    feed.publish({ kind: 'reset', why: 'start', revision: 'r0', schemaText: SCHEMA, receivedAt: Date.now() });
    feed.publish({ kind: 'state', state: 'live' });
    const before = checker.check(view('cl0'));
    feed.publish({ kind: 'reset', why: 'cursor_expired', revision: 'r5', schemaText: SCHEMA, receivedAt: Date.now() });
    const after = checker.check(view('cl0'));
    expect(backend.calls).toHaveLength(2);
    // The answer asked after the reset lands first; the older one must not overwrite it.
    backend.answerOne(1, 'denied');
    expect(await after).toMatchObject({ value: { permissionship: 'denied', cached: false } });
    backend.answerOne(0, 'allowed');
    expect(await before).toMatchObject({ value: { permissionship: 'allowed', cached: false } });
    expect(await checker.check(view('cl0'))).toMatchObject({ value: { permissionship: 'denied', cached: true } });
    expect(backend.calls).toHaveLength(2);
  });

  it('closes what it wraps and the Watch it owns, and stops following the feed', async () => {
    const closed: string[] = [];
    const inner: PermissionChecker & Closable = {
      check: () => Promise.resolve({ ok: true, value: { permissionship: 'allowed', cached: false } }),
      ready: () => true,
      close: () => {
        closed.push('inner');
        return Promise.resolve();
      },
    };
    const feed = new FeedReplay();
    const options = spicedbSchema.parse({ decisionCache: { freshness: 'watch', requireWatch: true } }).decisionCache;
    const checker = new CachingChecker(inner, options, new Metrics({ processMetrics: false }), feed, {
      close: () => {
        closed.push('watch');
        return Promise.resolve();
      },
    });
    await checker.close();
    expect(closed).toEqual(['watch', 'inner']);
    feed.publish({ kind: 'state', state: 'live' });
    expect(checker.ready()).toBe(false);
  });
});
