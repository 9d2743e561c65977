import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import type { Consistency, PermissionAnswer, PermissionQuery } from '../../src/core/ports.js';
import { Metrics } from '../../src/observability/metrics.js';
import type { Closable, PermissionChecker } from '../../src/core/ports.js';
import { spicedbSchema } from '../../src/spicedb/config.js';
import { decorate } from '../../src/spicedb/permission-checker.js';

/** A raw backend whose answers the test releases by hand, to hold calls in flight. */
class ControlledBackend implements PermissionChecker, Closable {
  calls: PermissionQuery[] = [];
  private waiting: Array<(answer: PermissionAnswer) => void> = [];
  auto: PermissionAnswer | undefined = { ok: true, value: { permissionship: 'allowed', cached: false } };

  check(query: PermissionQuery): Promise<PermissionAnswer> {
    this.calls.push(query);
    if (this.auto) return Promise.resolve(this.auto);
    return new Promise((resolve) => this.waiting.push(resolve));
  }
  release(answer: PermissionAnswer): void {
    for (const resolve of this.waiting.splice(0)) resolve(answer);
  }
  ready(): boolean {
    return true;
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

const query = (permission = 'view', consistency: Consistency = { kind: 'minimize_latency' }, context?: Record<string, unknown>): PermissionQuery => ({
  resource: { type: 'cloud', id: 'cl0' },
  permission,
  subject: { type: 'user', id: 'alice' },
  consistency,
  ...(context ? { context } : {}),
});

async function counter(metrics: Metrics, name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = (await metrics.registry.getMetricsAsJSON()).find((m) => m.name === name);
  return metric?.values.find((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l))?.value ?? 0;
}

/** The ttl freshness mode: these tests are about lifetimes and coalescing (watch mode: decision-cache-watch.test.ts). */
function stack(overrides: { decisionCache?: Record<string, unknown>; maxInflight?: number } = {}) {
  const backend = new ControlledBackend();
  const metrics = new Metrics({ processMetrics: false });
  const { decisionCache, ...rest } = overrides;
  const checker = decorate(backend, spicedbSchema.parse({ decisionCache: { freshness: 'ttl', ttlMs: 200, ...decisionCache }, ...rest }), metrics);
  return { backend, metrics, checker };
}

describe('permission checker decorators', () => {
  it('caches allows and denies alike, keyed on the whole check', async () => {
    const { backend, checker, metrics } = stack();
    backend.auto = { ok: true, value: { permissionship: 'denied', cached: false } };
    expect(await checker.check(query())).toEqual({ ok: true, value: { permissionship: 'denied', cached: false } });
    expect(await checker.check(query())).toEqual({ ok: true, value: { permissionship: 'denied', cached: true } });
    backend.auto = { ok: true, value: { permissionship: 'allowed', cached: false } };
    expect(await checker.check(query('edit'))).toEqual({ ok: true, value: { permissionship: 'allowed', cached: false } });
    expect(await checker.check(query('edit'))).toEqual({ ok: true, value: { permissionship: 'allowed', cached: true } });
    expect(await checker.check(query('edit', undefined, { ip: '10.0.0.1' }))).toMatchObject({ value: { cached: false } });
    expect(backend.calls).toHaveLength(3);
    expect(await counter(metrics, 'jwtauth_decision_cache_events_total', { event: 'hit' })).toBe(2);
    expect(await counter(metrics, 'jwtauth_spicedb_checks_total', { result: 'denied' })).toBe(1);
  });

  it('never serves a cached answer for another resource, subject or subject relation', async () => {
    const { backend, checker } = stack();
    const ask = (resourceId: string, subject: PermissionQuery['subject']) =>
      checker.check({ resource: { type: 'cloud', id: resourceId }, permission: 'view', subject, consistency: { kind: 'minimize_latency' } });
    expect(await ask('cl0', { type: 'group', id: 'eng', relation: 'member' })).toMatchObject({ value: { permissionship: 'allowed', cached: false } });
    backend.auto = { ok: true, value: { permissionship: 'denied', cached: false } };
    // Each differs from the cached check in one part only; each is its own answer.
    expect(await ask('cl1', { type: 'group', id: 'eng', relation: 'member' })).toMatchObject({ value: { permissionship: 'denied', cached: false } });
    expect(await ask('cl0', { type: 'group', id: 'eng' })).toMatchObject({ value: { permissionship: 'denied', cached: false } });
    expect(await ask('cl0', { type: 'group', id: 'ops', relation: 'member' })).toMatchObject({ value: { permissionship: 'denied', cached: false } });
    expect(await ask('cl0', { type: 'team', id: 'eng', relation: 'member' })).toMatchObject({ value: { permissionship: 'denied', cached: false } });
    expect(await ask('cl0', { type: 'group', id: 'eng', relation: 'member' })).toMatchObject({ value: { permissionship: 'allowed', cached: true } });
    expect(backend.calls).toHaveLength(5);
  });

  it('expires entries after the TTL', async () => {
    const { backend, checker } = stack({ decisionCache: { ttlMs: 50 } });
    await checker.check(query());
    await sleep(80);
    expect(await checker.check(query())).toMatchObject({ value: { cached: false } });
    expect(backend.calls).toHaveLength(2);
  });

  it('refreshes a hot entry in the background in the last quarter of its TTL, so it never expires under traffic', async () => {
    const { backend, checker, metrics } = stack({ decisionCache: { ttlMs: 1000 } });
    await checker.check(query());
    await sleep(20);
    expect(await checker.check(query())).toMatchObject({ value: { cached: true } });
    expect(backend.calls).toHaveLength(1);
    await sleep(830);
    // ~150 ms left of 1,000: answered from the cache at once, and asked again behind it.
    backend.auto = undefined;
    expect(await checker.check(query())).toMatchObject({ ok: true, value: { permissionship: 'allowed', cached: true } });
    expect(backend.calls).toHaveLength(2);
    expect(await checker.check(query())).toMatchObject({ value: { cached: true } });
    expect(backend.calls).toHaveLength(2);
    backend.release({ ok: true, value: { permissionship: 'allowed', cached: false } });
    await sleep(300);
    // Past the first answer's TTL: the refreshed entry answers, no request waited for SpiceDB.
    expect(await checker.check(query())).toMatchObject({ value: { cached: true } });
    expect(backend.calls).toHaveLength(2);
    expect(await counter(metrics, 'jwtauth_decision_cache_events_total', { event: 'refresh' })).toBe(1);
    expect(await counter(metrics, 'jwtauth_decision_cache_events_total', { event: 'miss' })).toBe(1);
  });

  it('serves no answer past its TTL when the background refresh fails', async () => {
    const { backend, checker } = stack({ decisionCache: { ttlMs: 1000 } });
    await checker.check(query());
    await sleep(850);
    backend.auto = { ok: false, reason: 'permission_backend_unavailable' };
    expect(await checker.check(query())).toMatchObject({ ok: true, value: { permissionship: 'allowed', cached: true } });
    await sleep(300);
    expect(await checker.check(query())).toMatchObject({ ok: false, reason: 'permission_backend_unavailable' });
    expect(backend.calls).toHaveLength(3);
  });

  it('never caches errors', async () => {
    const { backend, checker } = stack();
    backend.auto = { ok: false, reason: 'permission_backend_unavailable' };
    await checker.check(query());
    backend.auto = { ok: true, value: { permissionship: 'allowed', cached: false } };
    expect(await checker.check(query())).toEqual({ ok: true, value: { permissionship: 'allowed', cached: false } });
  });

  it('bypasses the cache and coalescing for fully_consistent and at_least_as_fresh', async () => {
    const { backend, checker } = stack();
    await checker.check(query());
    for (const consistency of [{ kind: 'fully_consistent' }, { kind: 'at_least_as_fresh', zedToken: 'z1' }] as const) {
      await Promise.all([checker.check(query('view', consistency)), checker.check(query('view', consistency))]);
    }
    expect(backend.calls).toHaveLength(5);
  });

  it('shares one SpiceDB call among identical concurrent checks', async () => {
    const { backend, checker, metrics } = stack();
    backend.auto = undefined;
    const answers = Promise.all(Array.from({ length: 10 }, () => checker.check(query())));
    await sleep(1);
    expect(backend.calls).toHaveLength(1);
    backend.release({ ok: true, value: { permissionship: 'allowed', cached: false } });
    expect((await answers).every((a) => a.ok && a.value.permissionship === 'allowed')).toBe(true);
    expect(await counter(metrics, 'jwtauth_decision_cache_events_total', { event: 'coalesced' })).toBe(9);
  });

  it('fails fast with permission_backend_overloaded beyond maxInflight, and recovers', async () => {
    const { backend, checker, metrics } = stack({ maxInflight: 2 });
    backend.auto = undefined;
    const first = checker.check(query('a'));
    const second = checker.check(query('b'));
    expect(await checker.check(query('c'))).toMatchObject({ ok: false, reason: 'permission_backend_overloaded' });
    expect(await counter(metrics, 'jwtauth_spicedb_inflight_checks')).toBe(2);
    backend.release({ ok: true, value: { permissionship: 'allowed', cached: false } });
    await Promise.all([first, second]);
    backend.auto = { ok: true, value: { permissionship: 'allowed', cached: false } };
    expect(await checker.check(query('c'))).toMatchObject({ ok: true, value: { permissionship: 'allowed' } });
    expect(backend.calls.map((q) => q.permission)).toEqual(['a', 'b', 'c']);
  });

  it('requires a preshared key with an endpoint', () => {
    expect(() => spicedbSchema.parse({ endpoint: 'spicedb:50051' })).toThrow(/presharedKey/);
    expect(spicedbSchema.parse({})).toMatchObject({ deadlineMs: 300, maxInflight: 256, decisionCache: { ttlMs: 3000 } });
  });
});
