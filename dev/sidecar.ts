/**
 * The built sidecar (`node dist/src/cli.js serve`) as its own process, the way Envoy meets it in
 * production, for the tests, the bench, the soak and the demo: started, waited for until its admin
 * listener says it is ready, scraped, and stopped with a signal so it drains as in a pod.
 */
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { PACKAGE_ROOT } from '../src/base/package-root.js';
import { freePort } from './ports.js';
import { GiveUp, startProcess, waitFor } from './processes.js';
import type { ManagedProcess } from './processes.js';
import { scrapeMetrics } from './prometheus.js';
import type { Exposition } from './prometheus.js';

const SIDECAR_CLI = join(PACKAGE_ROOT, 'dist', 'src', 'cli.js');

/** Writes `config` (an object, or YAML text as is) as `jwtauth.yaml` in `dir`; returns the file. */
export function writeSidecarConfig(config: unknown, dir = mkdtempSync(join(tmpdir(), 'jwtauth-config-'))): string {
  const file = join(dir, 'jwtauth.yaml');
  writeFileSync(file, typeof config === 'string' ? config : stringify(config));
  return file;
}

interface CommonOptions {
  /** Read at start, and again on change or SIGHUP: a caller may rewrite it to test reloads. */
  readonly configFile: string;
  /** The process's name in output and failure messages. Default: sidecar. */
  readonly name?: string;
  /** Another build of the sidecar (e.g. a worktree at an older commit, for before/after benchmarks). */
  readonly cli?: string;
  /** Node's own flags, before the script (e.g. --cpu-prof). */
  readonly nodeArgs?: readonly string[];
  /** Added to this process's environment. */
  readonly env?: NodeJS.ProcessEnv;
  /** Where relative paths in the config resolve from the process's point of view. */
  readonly cwd?: string;
  /** Called with every line the sidecar writes (its JSON logs, decision logs among them). */
  readonly onLine?: (line: string) => void;
  /**
   * When start and restart return: 'ready' (default) once /readyz answers 200, 'live' once /healthz
   * does (a sidecar whose JWKS or SpiceDB is meant to be unreachable never becomes ready), or
   * 'spawned' at once, for a caller that starts several processes and then waits for them together.
   */
  readonly waitUntil?: 'ready' | 'live' | 'spawned';
  /** How long start, restart and untilReady() wait. Default 30 s. */
  readonly startTimeoutMs?: number;
  /** How long stop() waits for the exit (the drain) before SIGKILL. Default 10 s. */
  readonly stopGraceMs?: number;
}

/** Addresses on the command line, overriding the config file's; free ports unless given. */
interface PortsOnCommandLine {
  readonly grpcPort?: number;
  readonly adminPort?: number;
  readonly portsInConfigFile?: false;
}

/** The config file's own server addresses, used as written; the ports say what they are. */
interface PortsInConfigFile {
  readonly grpcPort: number;
  readonly adminPort: number;
  readonly portsInConfigFile: true;
}

type SidecarOptions = CommonOptions & (PortsOnCommandLine | PortsInConfigFile);

export interface SidecarProcess {
  readonly name: string;
  readonly grpcPort: number;
  readonly adminPort: number;
  /** Base URL of the admin listener (/healthz, /readyz, /metrics, the JWKS). */
  readonly admin: string;
  readonly configFile: string;
  /** The running process; restart() replaces it. */
  readonly process: ManagedProcess;
  /** Waits for /readyz to answer 200, failing at once if the process exits first. */
  untilReady(timeoutMs?: number): Promise<void>;
  /** One scrape of /metrics. */
  metrics(): Promise<Exposition>;
  /** Sends `signal` (default SIGTERM: the sidecar drains, then exits) and waits for the exit; SIGKILL after the grace period. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Stops it with SIGTERM and starts it again with the same ports, config file and options. */
  restart(): Promise<void>;
}

export async function launchSidecar(options: SidecarOptions): Promise<SidecarProcess> {
  const { configFile, name = 'sidecar', cli = SIDECAR_CLI, nodeArgs = [], waitUntil = 'ready', startTimeoutMs = 30_000, stopGraceMs = 10_000 } = options;
  if (!existsSync(cli)) throw new Error(`${cli} is missing: run npm run build`);
  const grpcPort = options.grpcPort ?? (await freePort());
  const adminPort = options.adminPort ?? (await freePort());
  const admin = `http://127.0.0.1:${adminPort}`;
  const addresses = options.portsInConfigFile ? [] : ['--grpc-address', `127.0.0.1:${grpcPort}`, '--admin-address', `127.0.0.1:${adminPort}`];

  const answers200 = (running: ManagedProcess, path: string, timeoutMs: number): Promise<void> =>
    waitFor(
      async () => {
        const { exitCode, signalCode } = running.child;
        if (exitCode !== null || signalCode !== null) throw new GiveUp(`${name} exited with ${exitCode ?? signalCode}`);
        return (await fetch(`${admin}${path}`, { signal: AbortSignal.timeout(2000) })).status === 200;
      },
      timeoutMs,
      () => `${name} not ${path}:\n${running.output().slice(-4000)}`,
    );

  const start = async (): Promise<ManagedProcess> => {
    const started = startProcess(process.execPath, [...nodeArgs, cli, 'serve', '--config', configFile, ...addresses], {
      name,
      env: { ...process.env, ...options.env },
      cwd: options.cwd,
      onLine: options.onLine,
    });
    if (waitUntil === 'spawned') return started;
    try {
      await answers200(started, waitUntil === 'ready' ? '/readyz' : '/healthz', startTimeoutMs);
    } catch (error) {
      // Otherwise it would hold its ports until this process exits, failing the caller's next try.
      await started.stop('SIGKILL');
      throw error;
    }
    return started;
  };

  let running = await start();
  return {
    name,
    grpcPort,
    adminPort,
    admin,
    configFile,
    get process() {
      return running;
    },
    untilReady: (timeoutMs = startTimeoutMs) => answers200(running, '/readyz', timeoutMs),
    metrics: () => scrapeMetrics(`${admin}/metrics`),
    stop: (signal = 'SIGTERM') => running.stop(signal, stopGraceMs),
    async restart() {
      await running.stop('SIGTERM', stopGraceMs);
      running = await start();
    },
  };
}
