/**
 * Guarantee: with SpiceDB killed in the middle of a load and started again, through the real Envoy,
 * on the memory datastore and on Postgres (which keeps the relationships across the restart),
 *   - nothing reaches the app without a decision: every request the app saw was answered 200 to the
 *     client, and during the outage a 200 only ever came from a decision cached before the kill,
 *     within its TTL;
 *   - everything else is a 503 carrying x-jwtauth-reason (permission_backend_*);
 *   - decisions recover within 2 s of SpiceDB answering again, with the same sidecar process.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { throwawayDatastore } from '../../dev/postgres.js';
import type { ThrowawayDatastore } from '../../dev/postgres.js';
import { userToken } from '../../dev/hardening/fixtures.js';
import { runLoad, summarize } from '../../dev/hardening/load.js';
import type { LoadResult } from '../../dev/hardening/load.js';
import { receivedIds, startStack } from '../support/hardening/stack.js';
import type { Stack } from '../support/hardening/stack.js';

const TTL_MS = 1500;
/** Scheduling slack on a 2-core machine shared with Envoy and SpiceDB. */
const SLACK_MS = 150;
const WARM_CLOUDS = 8;
const BACKEND_REASONS = new Set(['permission_backend_unavailable', 'permission_backend_timeout', 'permission_backend_overloaded']);

let stack: Stack;
let alice: string;
let bob: string;

/** alice on a warm cloud (cached before the kill), alice on a cold one (never asked), or bob. */
function mixed(coldFrom: number) {
  return (i: number) => {
    const kind = i % 4;
    if (kind === 3) return { path: `/v1/clouds/cl${i % WARM_CLOUDS}/vms`, headers: { authorization: `Bearer ${bob}` }, tag: `bob:cl${i % WARM_CLOUDS}` };
    if (kind === 2) {
      const cloud = coldFrom + (i % (64 - coldFrom));
      return { path: `/v1/clouds/cl${cloud}/vms`, headers: { authorization: `Bearer ${alice}` }, tag: `cold:cl${cloud}` };
    }
    return { path: `/v1/clouds/cl${i % WARM_CLOUDS}/vms`, headers: { authorization: `Bearer ${alice}` }, tag: `warm:cl${i % WARM_CLOUDS}` };
  };
}

describe.each(['memory', 'postgres'] as const)('SpiceDB on the %s datastore killed under load and restarted', (engine) => {
  let datastore: ThrowawayDatastore | undefined;
  beforeAll(async () => {
    datastore = await throwawayDatastore(engine);
    stack = await startStack({
      datastore: datastore.datastore,
      overrides: { spicedb: { decisionCache: { ttlMs: TTL_MS, maxEntries: 10_000 }, deadlineMs: 250 } },
    });
    alice = await userToken(stack.externalKey, 'alice');
    bob = await userToken(stack.externalKey, 'bob');
  });
  afterAll(async () => {
    await stack?.close();
    await datastore?.stop();
  });

  it('never forwards without a decision, serves cached decisions within TTL, 503s the rest, and recovers within 2 s', async () => {
    const port = stack.envoy.ports.ingress;
    const pid = stack.sidecar.process.child.pid;
    // Warm: only the warm clouds and bob (cold clouds are never asked before the kill).
    const warm = await runLoad({
      port,
      durationMs: 1000,
      concurrency: 8,
      next: (i) => (i % 4 === 3 ? mixed(WARM_CLOUDS)(3) : { path: `/v1/clouds/cl${i % WARM_CLOUDS}/vms`, headers: { authorization: `Bearer ${alice}` }, tag: 'warm' }),
    });
    expect(summarize(warm)).toEqual({ '200': expect.any(Number), '403 permission_denied': expect.any(Number) });

    // Outage: load runs across the kill and for TTL + 1.5 s after it.
    const outage: LoadResult[] = [];
    // Cold clouds are asked only once SpiceDB is dead, so no answer for them can be cached.
    let dead = false;
    const outageMix = mixed(WARM_CLOUDS);
    const loading = runLoad({
      port,
      durationMs: 400 + TTL_MS + 1500,
      concurrency: 12,
      next: (i) => (dead || i % 4 !== 2 ? outageMix(i) : outageMix(i + 1)),
      onResult: (r) => outage.push(r),
    });
    await new Promise((r) => setTimeout(r, 300));
    const killStarted = performance.now();
    await stack.spicedb.stop();
    const killed = performance.now();
    dead = true;
    await loading;

    const afterKill = outage.filter((r) => r.start > killed);
    expect(afterKill.length).toBeGreaterThan(50);
    for (const r of afterKill) {
      if (r.status === 200) {
        // Only a decision cached before the kill, and only within its TTL.
        expect(r.tag, `allowed after the kill: ${r.tag}`).toMatch(/^warm:/);
        expect(r.start - killed, `allowed ${r.start - killed} ms after the kill`).toBeLessThanOrEqual(TTL_MS + SLACK_MS);
      } else if (r.status === 403) {
        // bob's denial, cached before the kill.
        expect(r.tag).toMatch(/^bob:/);
        expect(r.reason).toBe('permission_denied');
        expect(r.start - killed).toBeLessThanOrEqual(TTL_MS + SLACK_MS);
      } else {
        expect(r.status, JSON.stringify(r)).toBe(503);
        expect(BACKEND_REASONS.has(r.reason ?? ''), `reason ${r.reason}`).toBe(true);
      }
      if (r.tag.startsWith('cold:')) expect(r.status, 'a never-cached decision during the outage').toBe(503);
    }
    // Cached allows did keep serving (the cache is not dropped on errors)...
    expect(afterKill.some((r) => r.status === 200 && r.start - killed < TTL_MS - 300)).toBe(true);
    // ...and after the TTL nothing is allowed.
    const late = afterKill.filter((r) => r.start - killStarted > TTL_MS + SLACK_MS);
    expect(late.length).toBeGreaterThan(20);
    expect(late.filter((r) => r.status !== 503)).toEqual([]);

    // Recovery: SpiceDB back on the same port (memory: schema and relationships rewritten;
    // Postgres: kept), same sidecar.
    await stack.spicedb.restart();
    const up = performance.now();
    const recovery = await runLoad({ port, durationMs: 3000, concurrency: 8, next: mixed(WARM_CLOUDS) });
    const firstColdAllow = recovery.filter((r) => r.tag.startsWith('cold:') && r.status === 200).sort((a, b) => a.end - b.end)[0];
    expect(firstColdAllow, `no fresh decision after restart: ${JSON.stringify(summarize(recovery))}`).toBeDefined();
    expect(firstColdAllow!.end - up, 'ms from SpiceDB back to the first fresh allow').toBeLessThanOrEqual(2000);
    const settled = recovery.filter((r) => r.start - up > 2000);
    expect(summarize(settled)).toEqual({ '200': expect.any(Number), '403 permission_denied': expect.any(Number) });
    expect(stack.sidecar.process.child.pid).toBe(pid);

    // Nothing reached the app that the client was not told was allowed, across all phases.
    const allowed = new Set([...warm, ...outage, ...recovery].filter((r) => r.status === 200).map((r) => r.id));
    const seen = receivedIds(stack.app);
    expect([...seen].filter((id) => !allowed.has(id))).toEqual([]);
    expect(seen.size).toBe(allowed.size);
  });
});
