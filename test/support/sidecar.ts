/**
 * Runs the built sidecar (dist/) as its own process, the way Envoy meets it in production.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { freePort, startProcess, waitFor } from './processes.js';
import type { ManagedProcess } from './processes.js';

export const CLI = new URL('../../dist/src/cli.js', import.meta.url).pathname;

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
  const admin = `http://127.0.0.1:${adminPort}`;
  const launch = async (): Promise<ManagedProcess> => {
    const child = startProcess(
      process.execPath,
      [CLI, 'serve', '--config', configFile, '--grpc-address', `127.0.0.1:${grpcPort}`, '--admin-address', `127.0.0.1:${adminPort}`],
      { env: { ...process.env, JWTAUTH_LOG_LEVEL: 'warn', ...options.env }, ...(options.cwd ? { cwd: options.cwd } : {}) },
    );
    const path = options.waitReady === false ? '/healthz' : '/readyz';
    await waitFor(async () => (await fetch(`${admin}${path}`)).status === 200, 30_000, () => `sidecar not ${path}:\n${child.output()}`);
    return child;
  };
  let current = await launch();
  return {
    grpcPort,
    adminPort,
    configFile,
    admin,
    get process() {
      return current;
    },
    stop: (signal = 'SIGTERM') => current.stop(signal, 10_000),
    async restart() {
      await current.stop('SIGTERM', 10_000);
      current = await launch();
    },
    async metric(sample) {
      const text = await (await fetch(`${admin}/metrics`)).text();
      for (const line of text.split('\n')) {
        if (line.startsWith(sample) && line[sample.length] === ' ') return Number(line.slice(sample.length + 1));
      }
      return 0;
    },
  };
}
