/**
 * Runs the built sidecar (dist/) as its own process, the way Envoy meets it in production.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { PACKAGE_ROOT } from '../../src/package-root.js';
import { freePort } from '../../dev/ports.js';
import { GiveUp, startProcess, waitFor } from '../../dev/processes.js';
import type { ManagedProcess } from '../../dev/processes.js';

export const CLI = join(PACKAGE_ROOT, 'dist', 'src', 'cli.js');

export interface RunningSidecar {
  readonly grpcPort: number;
  readonly adminPort: number;
  readonly configFile: string;
  readonly process: ManagedProcess;
  readonly admin: string;
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again on the same ports and config file. */
  restart(): Promise<void>;
  /** Reads a Prometheus sample (exact name with labels, e.g. `jwtauth_checks_total{...}`), 0 when absent. */
  metric(sample: string): Promise<number>;
  /** Every sample of one /metrics scrape, by exact name with labels. */
  scrape(): Promise<Map<string, number>>;
}

/** Prometheus text format → sample value by exact name with labels (prom-client writes no timestamps). */
export function parsePrometheus(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    samples.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return samples;
}

export function writeConfig(config: unknown, dir = mkdtempSync(join(tmpdir(), 'jwtauth-config-'))): string {
  const file = join(dir, 'jwtauth.yaml');
  writeFileSync(file, typeof config === 'string' ? config : stringify(config));
  return file;
}

export async function startSidecar(
  config: unknown,
  options: { grpcPort?: number; adminPort?: number; env?: NodeJS.ProcessEnv; waitReady?: boolean; cwd?: string } = {},
): Promise<RunningSidecar> {
  const configFile = writeConfig(config);
  const grpcPort = options.grpcPort ?? (await freePort());
  const adminPort = options.adminPort ?? (await freePort());
  const launch = async (): Promise<ManagedProcess> => {
    const admin = `http://127.0.0.1:${adminPort}`;
    const child = startProcess(
      process.execPath,
      [CLI, 'serve', '--config', configFile, '--grpc-address', `127.0.0.1:${grpcPort}`, '--admin-address', `127.0.0.1:${adminPort}`],
      { env: { ...process.env, ...options.env }, ...(options.cwd ? { cwd: options.cwd } : {}) },
    );
    const path = options.waitReady === false ? '/healthz' : '/readyz';
    await waitFor(
      async () => {
        if (child.child.exitCode !== null) throw new GiveUp(`sidecar exited with ${child.child.exitCode}`);
        return (await fetch(`${admin}${path}`)).status === 200;
      },
      30_000,
      () => `sidecar not ${path}:\n${child.output()}`,
    );
    return child;
  };
  let running = await launch();
  const scrape = async (): Promise<Map<string, number>> => parsePrometheus(await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text());
  return {
    grpcPort,
    adminPort,
    admin: `http://127.0.0.1:${adminPort}`,
    configFile,
    get process() {
      return running;
    },
    stop: (signal = 'SIGTERM') => running.stop(signal, 10_000),
    async restart() {
      await running.stop('SIGTERM', 10_000);
      running = await launch();
    },
    scrape,
    async metric(sample) {
      return (await scrape()).get(sample) ?? 0;
    },
  };
}
