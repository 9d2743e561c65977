import { describe, expect, it } from 'vitest';
import { Metrics } from '../../src/observability/metrics.js';

/** The sample lines of one metric in a scrape, as Prometheus reads them. */
async function samples(metrics: Metrics, name: string): Promise<string[]> {
  return (await metrics.registry.metrics()).split('\n').filter((line) => line.startsWith(name));
}

// A series of a feature the sidecar is not using must be absent, not a constant 0: a 0 soonest
// expiry fires the token-expiry alert, and an empty checks-per-call histogram on the embedded
// SpiceDB (which makes no CheckBulkPermissions calls) says "no calls" forever.
describe('series that exist only while their feature is in use', () => {
  it('a fresh sidecar exports neither the soonest token expiry nor checks per call', async () => {
    const metrics = new Metrics({ processMetrics: false });
    expect(await samples(metrics, 'jwtauth_token_cache_soonest_expiry_seconds')).toEqual([]);
    expect(await samples(metrics, 'jwtauth_spicedb_checks_per_call')).toEqual([]);
  });

  it('the checks-per-call histogram appears with the first CheckBulkPermissions call and keeps counting', async () => {
    const metrics = new Metrics({ processMetrics: false });
    metrics.observeSpicedbChecksPerCall(3);
    metrics.observeSpicedbChecksPerCall(5);
    const lines = await samples(metrics, 'jwtauth_spicedb_checks_per_call');
    expect(lines).toContain('jwtauth_spicedb_checks_per_call_sum 8');
    expect(lines).toContain('jwtauth_spicedb_checks_per_call_count 2');
  });

  it('the soonest expiry follows the cache: a value while it holds a token, no series once it is empty', async () => {
    const metrics = new Metrics({ processMetrics: false });
    metrics.setTokenCacheSoonestExpiry(120);
    metrics.setTokenCacheSoonestExpiry(90);
    expect(await samples(metrics, 'jwtauth_token_cache_soonest_expiry_seconds')).toEqual(['jwtauth_token_cache_soonest_expiry_seconds 90']);
    metrics.setTokenCacheSoonestExpiry(undefined);
    expect(await samples(metrics, 'jwtauth_token_cache_soonest_expiry_seconds')).toEqual([]);
    metrics.setTokenCacheSoonestExpiry(60);
    expect(await samples(metrics, 'jwtauth_token_cache_soonest_expiry_seconds')).toEqual(['jwtauth_token_cache_soonest_expiry_seconds 60']);
  });
});
