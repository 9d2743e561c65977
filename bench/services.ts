/**
 * The sidecar as a process for the benchmark: pinned to a core, with extra node flags, and
 * optionally another build (BENCH_SIDECAR_CLI). SpiceDB, Envoy's binary and process lifetime come
 * from test/support, like the tests.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { PACKAGE_ROOT } from '../src/package-root.js';
import { freePort } from '../dev/ports.js';
import { TOOLS_BIN, startProcess, waitFor } from '../dev/processes.js';
import type { ManagedProcess } from '../dev/processes.js';

export const ROOT = PACKAGE_ROOT;
export const TOOLS = TOOLS_BIN;
/** BENCH_SIDECAR_CLI runs another build of the sidecar (e.g. a worktree at an older commit) for before/after runs. */
export const CLI = process.env.BENCH_SIDECAR_CLI ?? join(ROOT, 'dist/src/cli.js');

export interface BenchSidecar {
  readonly grpcPort: number;
  readonly process: ManagedProcess;
  /** A Prometheus sample by exact name and labels; 0 when absent. */
  metric(sample: string): Promise<number>;
  /** Every sample whose name starts with one of `prefixes`, by full name with labels. */
  samples(prefixes: readonly string[]): Promise<Record<string, number>>;
  stop(): Promise<void>;
}

export async function startBenchSidecar(config: Record<string, unknown>, options: { env: NodeJS.ProcessEnv; cwd: string; nodeArgs?: readonly string[] }): Promise<BenchSidecar> {
  const dir = mkdtempSync(join(tmpdir(), 'jwtauth-bench-config-'));
  const configFile = join(dir, 'jwtauth.yaml');
  writeFileSync(configFile, stringify(config));
  const grpcPort = await freePort();
  const adminPort = await freePort();
  const admin = `http://127.0.0.1:${adminPort}`;
  const proc = startProcess(
    process.execPath,
    [...(options.nodeArgs ?? []), CLI, 'serve', '--config', configFile, '--grpc-address', `127.0.0.1:${grpcPort}`, '--admin-address', `127.0.0.1:${adminPort}`],
    { env: { ...process.env, JWTAUTH_LOG_LEVEL: 'warn', ...options.env }, cwd: options.cwd },
  );
  await waitFor(async () => (await fetch(`${admin}/readyz`)).status === 200, 60_000, () => `sidecar not ready:\n${proc.output()}`);
  return {
    grpcPort,
    process: proc,
    async metric(sample) {
      const text = await (await fetch(`${admin}/metrics`)).text();
      for (const line of text.split('\n')) {
        if (line.startsWith(sample) && line[sample.length] === ' ') return Number(line.slice(sample.length + 1));
      }
      return 0;
    },
    async samples(prefixes) {
      const text = await (await fetch(`${admin}/metrics`)).text();
      const out: Record<string, number> = {};
      for (const line of text.split('\n')) {
        if (line.startsWith('#') || !prefixes.some((p) => line.startsWith(p))) continue;
        const at = line.lastIndexOf(' ');
        out[line.slice(0, at)] = Number(line.slice(at + 1));
      }
      return out;
    },
    // SIGTERM: the sidecar drains (drainSeconds 0) and exits, so --cpu-prof gets to write its file.
    stop: () => proc.stop('SIGTERM', 15_000),
  };
}
