import { describe, expect, it } from 'vitest';
import type { TokenRequest, TokenResult, TokenSource } from '../../src/core/ports.js';
import { Metrics } from '../../src/observability/metrics.js';
import { CachingTokenSource, MeteredTokenSource } from '../../src/tokens/token-cache.js';

const LIFETIME = 300;
const SKEW = 30;

/** A source on a manual clock; each answer can be held back to observe coalescing. */
class ScriptedSource implements TokenSource {
  readonly name = 'scripted';
  calls: TokenRequest[] = [];
  down = false;
  private serial = 0;
  private gate: Promise<void> | undefined;
  private openGate: (() => void) | undefined;
  constructor(private readonly clock: { now: number }, private readonly lifetime = LIFETIME) {}

  hold(): void {
    this.gate = new Promise((resolve) => (this.openGate = resolve));
  }
  release(): void {
    this.openGate?.();
    this.gate = undefined;
  }

  async issue(request: TokenRequest): Promise<TokenResult> {
    this.calls.push(request);
    if (this.gate) await this.gate;
    if (this.down) return { ok: false, reason: 'token_source_unavailable', detail: 'down' };
    const iat = Math.floor(this.clock.now / 1000);
    this.serial++;
    return { ok: true, value: { token: `t${this.serial}`, issuedAt: iat, expiresAt: iat + this.lifetime } };
  }
}

function setup(options: { maxEntries?: number; lifetime?: number; jitter?: number; random?: () => number } = {}) {
  const clock = { now: 1_700_000_000_000 };
  const inner = new ScriptedSource(clock, options.lifetime);
  const metrics = new Metrics({ processMetrics: false });
  const cache = new CachingTokenSource(inner, {
    maxEntries: options.maxEntries ?? 100,
    refreshAtFraction: 0.5,
    jitterFraction: options.jitter ?? 0,
    retrySeconds: 5,
    clockSkewSeconds: SKEW,
    metrics,
    now: () => clock.now,
    random: options.random ?? (() => 0.5),
    sweepIntervalMs: 0,
  });
  const events = async (event: string) =>
    (await metrics.tokenCacheEvents.get()).values.find((v) => v.labels.event === event)?.value ?? 0;
  return { clock, inner, cache, metrics, events };
}

const SERVICE: TokenRequest = { kind: 'service', audience: 'vmcontroller' };
const flush = () => new Promise((resolve) => setImmediate(resolve));

/** The soonest-expiry sample lines of a scrape, as Prometheus would read them. */
async function soonestExpirySeries(metrics: Metrics): Promise<string[]> {
  return (await metrics.registry.metrics()).split('\n').filter((line) => line.startsWith('jwtauth_token_cache_soonest_expiry_seconds'));
}

function tokenOf(result: TokenResult): string {
  if (!result.ok) throw new Error(`expected a token, got ${result.reason}`);
  return result.value.token;
}

describe('token cache', () => {
  it('serves a cached token without calling the source again', async () => {
    const { cache, inner, events } = setup();
    expect(tokenOf(await cache.issue(SERVICE))).toBe('t1');
    expect(tokenOf(await cache.issue(SERVICE))).toBe('t1');
    expect(inner.calls).toHaveLength(1);
    expect(await events('miss')).toBe(1);
    expect(await events('hit')).toBe(1);
  });

  it('keys on kind, audience and subject: different audiences or users get different tokens', async () => {
    const { cache, inner } = setup();
    await cache.issue(SERVICE);
    await cache.issue({ kind: 'service', audience: 'gwadmin' });
    await cache.issue({ kind: 'on_behalf_of', audience: 'vmcontroller', user: 'alice', userType: 'user' });
    await cache.issue({ kind: 'on_behalf_of', audience: 'vmcontroller', user: 'bob', userType: 'user' });
    await cache.issue({ kind: 'exchange', audience: 'vmcontroller', subjectToken: 'a', subjectTokenFingerprint: 'ha', subject: 'alice' });
    await cache.issue({ kind: 'exchange', audience: 'vmcontroller', subjectToken: 'b', subjectTokenFingerprint: 'hb', subject: 'bob' });
    expect(inner.calls).toHaveLength(6);
    expect(tokenOf(await cache.issue({ kind: 'on_behalf_of', audience: 'vmcontroller', user: 'bob', userType: 'user' }))).toBe('t4');
  });

  it('coalesces concurrent misses into one fetch', async () => {
    const { cache, inner } = setup();
    inner.hold();
    const waiting = Array.from({ length: 20 }, () => cache.issue(SERVICE));
    await flush();
    expect(inner.calls).toHaveLength(1);
    inner.release();
    const results = await Promise.all(waiting);
    expect(results.map(tokenOf)).toEqual(Array(20).fill('t1'));
  });

  it('a hit returns the same settled promise each time (no per-hit promise chain)', async () => {
    const { cache } = setup();
    await cache.issue(SERVICE);
    expect(cache.issue(SERVICE)).toBe(cache.issue(SERVICE));
  });

  it('refreshes ahead at half the lifetime in the background while serving the old token', async () => {
    const { cache, inner, clock, events } = setup();
    await cache.issue(SERVICE);
    clock.now += 149_000;
    expect(tokenOf(await cache.issue(SERVICE))).toBe('t1');
    expect(inner.calls).toHaveLength(1);
    clock.now += 2_000; // past 150 s
    inner.hold();
    expect(tokenOf(await cache.issue(SERVICE))).toBe('t1'); // served at once, refresh in flight
    expect(tokenOf(await cache.issue(SERVICE))).toBe('t1'); // no second refresh
    expect(inner.calls).toHaveLength(2);
    inner.release();
    await flush();
    expect(tokenOf(await cache.issue(SERVICE))).toBe('t2');
    expect(await events('refresh')).toBe(1);
  });

  it('spreads refreshes with jitter of about ±10%', async () => {
    const refreshAfter = async (random: number) => {
      const { cache, inner, clock } = setup({ jitter: 0.1, random: () => random });
      await cache.issue(SERVICE);
      let elapsed = 0;
      while (inner.calls.length === 1 && elapsed < 300_000) {
        clock.now += 1000;
        elapsed += 1000;
        await cache.issue(SERVICE);
      }
      return elapsed / 1000;
    };
    expect(await refreshAfter(0)).toBe(135);
    expect(await refreshAfter(0.5)).toBe(150);
    expect(await refreshAfter(0.999)).toBe(165);
  });

  it('keeps serving the cached token while the issuer is down, but never past exp minus skew', async () => {
    const { cache, inner, clock, events } = setup();
    await cache.issue(SERVICE); // exp = now + 300 s
    inner.down = true;
    clock.now += 200_000;
    expect(tokenOf(await cache.issue(SERVICE))).toBe('t1'); // triggers a refresh that fails
    await flush();
    expect(await events('refresh_failure')).toBe(1);
    clock.now += 69_000; // 269 s: still before exp - 30 s
    expect(tokenOf(await cache.issue(SERVICE))).toBe('t1');
    expect(await events('stale_served')).toBeGreaterThanOrEqual(1);
    clock.now += 1_000; // 270 s = exp - skew: no longer servable
    const result = await cache.issue(SERVICE);
    expect(result).toMatchObject({ ok: false, reason: 'token_source_unavailable' });
  });

  it('retries a failed refresh after retrySeconds, not on every request', async () => {
    const { cache, inner, clock } = setup();
    await cache.issue(SERVICE);
    inner.down = true;
    clock.now += 160_000;
    await cache.issue(SERVICE);
    await flush();
    const after = inner.calls.length;
    await cache.issue(SERVICE);
    await cache.issue(SERVICE);
    expect(inner.calls.length).toBe(after);
    clock.now += 5_000;
    inner.down = false;
    await cache.issue(SERVICE);
    await flush();
    expect(inner.calls.length).toBe(after + 1);
    expect(tokenOf(await cache.issue(SERVICE))).toBe('t2');
  });

  it('does not cache failures: the next request asks again', async () => {
    const { cache, inner } = setup();
    inner.down = true;
    expect(await cache.issue(SERVICE)).toMatchObject({ ok: false, reason: 'token_source_unavailable' });
    inner.down = false;
    expect(tokenOf(await cache.issue(SERVICE))).toBe('t1');
    expect(inner.calls).toHaveLength(2);
  });

  it('refuses a token that would expire within the skew allowance', async () => {
    const { cache } = setup({ lifetime: SKEW });
    expect(await cache.issue(SERVICE)).toMatchObject({ ok: false, reason: 'token_source_error' });
  });

  it('turns a throwing source into an internal_error denial, like every port that throws', async () => {
    const metrics = new Metrics({ processMetrics: false });
    const cache = new CachingTokenSource(
      { name: 'broken', issue: () => Promise.reject(new Error('boom')) },
      { maxEntries: 10, refreshAtFraction: 0.5, jitterFraction: 0, retrySeconds: 5, clockSkewSeconds: 30, metrics, sweepIntervalMs: 0 },
    );
    expect(await cache.issue(SERVICE)).toMatchObject({ ok: false, reason: 'internal_error' });
  });

  it('holds at most maxEntries tokens, evicting the least recently used', async () => {
    const { cache, inner } = setup({ maxEntries: 3 });
    for (const audience of ['a1', 'a2', 'a3', 'a4']) await cache.issue({ kind: 'service', audience });
    expect(cache.size).toBe(3);
    await cache.issue({ kind: 'service', audience: 'a4' });
    await cache.issue({ kind: 'service', audience: 'a1' });
    expect(inner.calls).toHaveLength(5); // a1 was evicted and fetched again, a4 was a hit
  });

  it('sweeps unservable entries and reports the soonest expiry', async () => {
    const { cache, clock, metrics } = setup();
    await cache.issue(SERVICE);
    cache.sweep();
    expect(await soonestExpirySeries(metrics)).toEqual(['jwtauth_token_cache_soonest_expiry_seconds 300']);
    clock.now += 280_000;
    cache.sweep();
    expect(cache.size).toBe(0);
  });

  // A constant 0 would read as "a token expires now" and fire the expiry alert on every sidecar
  // that caches nothing (inbound-only, or outbound before its first call).
  it('exports no soonest-expiry series while the cache is empty', async () => {
    const { cache, clock, metrics } = setup();
    expect(await soonestExpirySeries(metrics)).toEqual([]);
    cache.sweep();
    expect(await soonestExpirySeries(metrics)).toEqual([]);
    await cache.issue(SERVICE);
    cache.sweep();
    expect(await soonestExpirySeries(metrics)).toHaveLength(1);
    clock.now += 280_000;
    cache.sweep();
    expect(await soonestExpirySeries(metrics)).toEqual([]);
  });
});

describe('instrumented token source', () => {
  it('counts tokens by source, kind and result', async () => {
    const metrics = new Metrics({ processMetrics: false });
    let fail = false;
    const source = new MeteredTokenSource(
      {
        name: 'mint',
        issue: () => Promise.resolve<TokenResult>(fail ? { ok: false, reason: 'token_source_error' } : { ok: true, value: { token: 'x', issuedAt: 0, expiresAt: 1 } }),
      },
      metrics,
    );
    await source.issue(SERVICE);
    fail = true;
    await source.issue(SERVICE);
    const values = (await metrics.tokensIssued.get()).values;
    expect(values).toContainEqual(expect.objectContaining({ labels: { source: 'mint', kind: 'service', result: 'ok' }, value: 1 }));
    expect(values).toContainEqual(expect.objectContaining({ labels: { source: 'mint', kind: 'service', result: 'token_source_error' }, value: 1 }));
  });
});
