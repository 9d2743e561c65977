/**
 * Core sharing on this 2-core machine: core 0 runs Envoy (one worker), the load generator, the
 * orchestrator and SpiceDB (busy only in the uncached scenario, where Envoy's share is small);
 * core 1 runs the authorizer under test alone. Every authorizer thus gets exactly one core, and
 * nothing it does can steal Envoy's or the load generator's time. With fewer than 2 CPUs nothing
 * is pinned.
 */
import { execFileSync } from 'node:child_process';
import { cpus } from 'node:os';

export const PIN = cpus().length >= 2;
export const FRONT_CPUS = PIN ? '0' : undefined;
export const AUTHZ_CPUS = PIN ? '1' : undefined;

export function pin(pid: number | undefined, cpuList: string | undefined): void {
  if (pid === undefined || cpuList === undefined) return;
  // -a: every thread (Node's libuv pool and GC helpers, Go's Ms), not just the main one.
  execFileSync('taskset', ['-a', '-pc', cpuList, String(pid)], { stdio: 'ignore' });
}
