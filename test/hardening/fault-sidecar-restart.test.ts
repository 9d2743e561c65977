/**
 * The sidecar restarted under load: SIGTERM (health NOT_SERVING, drain server.drainSeconds, finish
 * in-flight checks, exit), then started again on the same port (startSidecar's restart()). With
 * envoy/envoy.yaml as shipped, Envoy's retry policy on the ext_authz call carries every request
 * across the gap between the old process closing its listener and the new one listening
 * (docs/security.md, "Sidecar restart").
 */
import { afterAll, describe, expect, it } from 'vitest';
import { userToken } from '../../dev/hardening/fixtures.js';
import { runLoad, summarize } from '../../dev/hardening/load.js';
import type { LoadResult } from '../../dev/hardening/load.js';
import { receivedIds, startStack } from '../support/hardening/stack.js';
import type { Stack } from '../support/hardening/stack.js';

const STATS = [
  'cluster.jwtauth_sidecar.upstream_rq_retry',
  'cluster.jwtauth_sidecar.upstream_rq_retry_overflow',
  'cluster.jwtauth_sidecar.upstream_rq_retry_limit_exceeded',
  'cluster.jwtauth_sidecar.upstream_cx_connect_fail',
  'cluster.jwtauth_sidecar.upstream_rq_pending_failure_eject',
  'http.ingress.ext_authz.error',
  'http.ingress.ext_authz.ok',
];

interface RestartRun {
  readonly results: LoadResult[];
  /** performance.now() when SIGTERM was sent and when the new process was ready. */
  readonly restartStarted: number;
  readonly restartDone: number;
  readonly envoy: Record<string, number>;
  readonly detail: string;
}

async function restartUnderLoad(stack: Stack): Promise<RestartRun> {
  const alice = await userToken(stack.externalKey, 'alice');
  const before = Object.fromEntries(await Promise.all(STATS.map(async (s) => [s, await stack.envoy.stat(s)] as const)));
  const loading = runLoad({
    port: stack.envoy.ports.ingress,
    durationMs: 5500,
    concurrency: 8,
    pauseMs: 5,
    next: (i) => ({ path: `/v1/clouds/cl${i % 8}/vms`, headers: { authorization: `Bearer ${alice}` } }),
  });
  await new Promise((r) => setTimeout(r, 800));
  const restartStarted = performance.now();
  await stack.sidecar.restart();
  const restartDone = performance.now();
  const results = await loading;
  const envoy = Object.fromEntries(await Promise.all(STATS.map(async (s) => [s, (await stack.envoy.stat(s)) - (before[s] ?? 0)] as const)));
  const failed = results.filter((r) => r.status !== 200);
  const detail = JSON.stringify({
    counts: summarize(results),
    restartMs: Math.round(restartDone - restartStarted),
    failedBetweenMs: failed.length ? [Math.round(Math.min(...failed.map((r) => r.start - restartStarted))), Math.round(Math.max(...failed.map((r) => r.end - restartStarted)))] : [],
    envoy,
  });
  return { results, restartStarted, restartDone, envoy, detail };
}

describe('sidecar restarted under load', () => {
  let stack: Stack | undefined;
  afterAll(async () => {
    await stack?.close();
  });

  it('loses no request: every one is answered by a sidecar, none unchecked', async () => {
    stack = await startStack();
    const run = await restartUnderLoad(stack);
    expect(run.results.filter((r) => r.start > run.restartDone).length, run.detail).toBeGreaterThan(50);
    // The restart did open a gap that needed retries...
    expect(run.envoy['cluster.jwtauth_sidecar.upstream_rq_retry'], run.detail).toBeGreaterThan(0);
    // ...and every request was answered by a sidecar.
    expect(run.results.filter((r) => r.status !== 200), run.detail).toEqual([]);
    expect(run.envoy['http.ingress.ext_authz.error'], run.detail).toBe(0);
    expect(receivedIds(stack.app).size).toBe(run.results.length);
    await stack.close();
    stack = undefined;
  }, 60_000);
});
