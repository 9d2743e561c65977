/**
 * Guarantee: when SpiceDB accepts calls and never answers (a stalled connection, latency far over
 * the deadline), through the real Envoy:
 *   - checks end at spicedb.deadlineMs with 503 permission_backend_timeout (not at Envoy's timeout);
 *   - SpiceDB calls in flight never exceed spicedb.maxInflight (jwtauth_spicedb_inflight_calls);
 *   - past that bound requests are shed at once with 503 permission_backend_overloaded instead of
 *     queueing, so the sidecar's memory stays flat;
 *   - nothing reaches the app, and it recovers when SpiceDB answers again.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { userToken } from '../support/hardening/fixtures.js';
import { runLoad, summarize } from '../support/hardening/load.js';
import { http1, startStack } from '../support/hardening/stack.js';
import type { Stack } from '../support/hardening/stack.js';
import { waitFor } from '../../dev/processes.js';

const DEADLINE_MS = 200;
/** grpc_service.timeout of the ext_authz filter in envoy/envoy.yaml. */
const ENVOY_EXT_AUTHZ_TIMEOUT_MS = 3000;
const MAX_INFLIGHT = 8;

let stack: Stack;
let alice: string;

beforeAll(async () => {
  stack = await startStack({
    stallProxy: true,
    overrides: { spicedb: { deadlineMs: DEADLINE_MS, maxInflight: MAX_INFLIGHT, decisionCache: { ttlMs: 0, maxEntries: 1000 } } },
  });
  alice = await userToken(stack.externalKey, 'alice');
});
afterAll(async () => {
  await stack?.close();
});

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1] ?? NaN;

describe('SpiceDB slower than the deadline', () => {
  it('times out at the deadline, bounds in-flight calls, sheds the excess with 503 overloaded, and recovers', async () => {
    const port = stack.envoy.ports.ingress;
    const auth = { authorization: `Bearer ${alice}` };
    expect((await http1(port, '/v1/clouds/cl0/vms', auth)).status).toBe(200);
    const appBefore = stack.app.received.length;
    const rssBefore = await stack.sidecar.metric('process_resident_memory_bytes');

    stack.proxy!.setStalled(true);
    let maxInflight = 0;
    let samples = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        maxInflight = Math.max(maxInflight, await stack.sidecar.metric('jwtauth_spicedb_inflight_calls'));
        samples++;
        await new Promise((r) => setTimeout(r, 40));
      }
    })();
    // Every request names a different cloud: no cache hit, no coalescing, one SpiceDB call each.
    const results = await runLoad({
      port,
      durationMs: 3000,
      concurrency: 48,
      next: (i) => ({ path: `/v1/clouds/x${i}/vms`, headers: auth }),
    });
    sampling = false;
    await sampler;
    const rssAfter = await stack.sidecar.metric('process_resident_memory_bytes');

    const counts = summarize(results);
    expect(Object.keys(counts).sort(), JSON.stringify(counts)).toEqual(['503 permission_backend_overloaded', '503 permission_backend_timeout']);
    const timeouts = results.filter((r) => r.reason === 'permission_backend_timeout').map((r) => r.end - r.start);
    const shed = results.filter((r) => r.reason === 'permission_backend_overloaded').map((r) => r.end - r.start);
    // The sidecar's own deadline ends each call, not Envoy's ext_authz timeout (grpc_service.timeout
    // in envoy/envoy.yaml, 3 s), which would answer without x-jwtauth-reason; the counts above
    // already show every answer carried the sidecar's reason.
    expect(Math.min(...timeouts)).toBeGreaterThanOrEqual(DEADLINE_MS - 5);
    expect(median(timeouts)).toBeLessThan(DEADLINE_MS + 150);
    expect(Math.max(...timeouts)).toBeLessThan(ENVOY_EXT_AUTHZ_TIMEOUT_MS);
    // Bounded: never more calls in flight than maxInflight, and the bound was actually reached.
    expect(samples).toBeGreaterThan(20);
    expect(maxInflight).toBe(MAX_INFLIGHT);
    expect(await stack.sidecar.metric('jwtauth_spicedb_calls_total{result="permission_backend_timeout"}')).toBeLessThanOrEqual(
      // at most maxInflight calls can start per deadline period
      MAX_INFLIGHT * Math.ceil(3000 / DEADLINE_MS + 2),
    );
    // Shed at once, not queued behind the stalled calls; most of the load is shed.
    expect(shed.length).toBeGreaterThan(timeouts.length);
    expect(median(shed)).toBeLessThan(DEADLINE_MS / 2);
    // Memory stays flat while thousands of requests are shed.
    expect(rssAfter - rssBefore, `RSS grew ${(rssAfter - rssBefore) / 2 ** 20} MiB`).toBeLessThan(48 * 2 ** 20);
    expect(stack.app.received.length).toBe(appBefore);

    stack.proxy!.setStalled(false);
    await waitFor(async () => (await http1(port, '/v1/clouds/cl1/vms', auth)).status === 200, 3000, () => 'no recovery after SpiceDB answered again');
    expect(await stack.sidecar.metric('jwtauth_spicedb_inflight_calls')).toBeLessThanOrEqual(MAX_INFLIGHT);
  });
});
