/**
 * Runs the built sidecar (dist/) as its own process, the way Envoy meets it in production: the
 * tests' view of dev/sidecar.ts, taking the configuration as an object and reading metrics by the
 * series names tests spell out.
 */
import { launchSidecar, writeSidecarConfig } from '../../dev/sidecar.js';
import type { ManagedProcess } from '../../dev/processes.js';

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

export async function startSidecar(
  config: unknown,
  options: { grpcPort?: number; adminPort?: number; env?: NodeJS.ProcessEnv; waitReady?: boolean; cwd?: string } = {},
): Promise<RunningSidecar> {
  const sidecar = await launchSidecar({
    configFile: writeSidecarConfig(config),
    grpcPort: options.grpcPort,
    adminPort: options.adminPort,
    env: options.env,
    cwd: options.cwd,
    waitUntil: options.waitReady === false ? 'live' : 'ready',
  });
  const scrape = async (): Promise<Map<string, number>> => (await sidecar.metrics()).series;
  return {
    grpcPort: sidecar.grpcPort,
    adminPort: sidecar.adminPort,
    admin: sidecar.admin,
    configFile: sidecar.configFile,
    get process() {
      return sidecar.process;
    },
    stop: (signal) => sidecar.stop(signal),
    restart: () => sidecar.restart(),
    scrape,
    async metric(sample) {
      return (await scrape()).get(sample) ?? 0;
    },
  };
}
