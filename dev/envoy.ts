/**
 * The real Envoy (installed by scripts/install-tools.sh) as a child process, for the tests, the
 * bench, the soak and the demo: the one place that knows how to start it, wait until it is ready,
 * read its admin stats and stop it.
 *
 * `startEnvoy` runs envoy/envoy.yaml itself (or a test's variant of it), changing nothing but port
 * numbers and the upstream Service names (pointed at loopback), so the tests exercise the file users
 * deploy. Envoy's own ports (ingress, egress, readiness, admin) are bound to port 0 and read back
 * from Envoy, so tests running in parallel never race for a "free" port.
 */
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../src/base/package-root.js';
import { freePort } from './ports.js';
import { GiveUp, startProcess, TOOLS_BIN, waitFor } from './processes.js';
import type { ManagedProcess } from './processes.js';

export interface EnvoyOptions {
  /** The bootstrap, YAML or JSON (see writeEnvoyConfig). */
  readonly configFile: string;
  /** The process's name in output and failure messages. Default: envoy. */
  readonly name?: string;
  /** Envoy's worker threads (default 1); each keeps its own connection to the authorizer. */
  readonly concurrency?: number;
  /** A CPU list for taskset (the bench pins Envoy to its core); unpinned when undefined. */
  readonly cpus?: string;
  /** The whole environment of the process. Default: this process's. */
  readonly env?: NodeJS.ProcessEnv;
  /**
   * When launchEnvoy returns: 'ready' (default) once the admin /ready answers 200, or 'spawned' at
   * once, for a caller that starts several processes and then waits for them together.
   */
  readonly waitUntil?: 'ready' | 'spawned';
  /** How long launchEnvoy and untilReady() wait. Default 20 s. */
  readonly startTimeoutMs?: number;
}

export interface EnvoyProcess {
  readonly name: string;
  readonly configFile: string;
  readonly process: ManagedProcess;
  /** Waits for the admin /ready to answer 200, failing at once if the process exits first. */
  untilReady(timeoutMs?: number): Promise<void>;
  /** Base URL of the admin listener; known once Envoy has started listening (after untilReady). */
  admin(): string;
  /** Reads a stat counter or gauge by exact name from the admin listener; 0 if Envoy has none. */
  stat(name: string): Promise<number>;
  stop(): Promise<void>;
}

/** Writes an Envoy bootstrap (an object, as JSON, or YAML text as is) to a new temp dir; returns the file. */
export function writeEnvoyConfig(config: object | string): string {
  const dir = mkdtempSync(join(tmpdir(), 'jwtauth-envoy-'));
  if (typeof config === 'string') {
    const file = join(dir, 'envoy.yaml');
    writeFileSync(file, config);
    return file;
  }
  const file = join(dir, 'envoy.json');
  writeFileSync(file, JSON.stringify(config, null, 1));
  return file;
}

/** The command line: Envoy itself, or taskset running it on `cpus`. */
function envoyCommand(options: EnvoyOptions, adminAddressFile: string): readonly [string, ...string[]] {
  const envoy = join(TOOLS_BIN, 'envoy');
  const args = [
    '-c', options.configFile,
    '--admin-address-path', adminAddressFile,
    // Several Envoys on one machine must not share the shared-memory region hot restart would use.
    '--base-id', String(Math.floor(Math.random() * 1_000_000)),
    '--log-level', 'warn',
    '--concurrency', String(options.concurrency ?? 1),
    '--disable-hot-restart',
  ];
  return options.cpus === undefined ? [envoy, ...args] : ['taskset', '-c', options.cpus, envoy, ...args];
}

/**
 * Starts Envoy with `configFile`. The admin address is read from the file Envoy writes it to
 * (--admin-address-path), so a bootstrap may bind its admin listener to port 0.
 */
export async function launchEnvoy(options: EnvoyOptions): Promise<EnvoyProcess> {
  const { configFile, name = 'envoy', waitUntil = 'ready', startTimeoutMs = 20_000 } = options;
  const adminAddressFile = join(mkdtempSync(join(tmpdir(), 'jwtauth-envoy-admin-')), 'admin-address');
  const [command, ...args] = envoyCommand(options, adminAddressFile);
  const child = startProcess(command, args, { name, env: options.env ?? process.env });

  let admin: string | undefined;
  const untilReady = (timeoutMs = startTimeoutMs): Promise<void> =>
    waitFor(
      async () => {
        if (child.child.exitCode !== null || child.child.signalCode !== null) throw new GiveUp(`${name} exited`);
        if (admin === undefined) {
          // Envoy creates the file before it writes the address into it: an empty or partial
          // read is not the address, and caching it would poll nowhere until the timeout.
          const written = existsSync(adminAddressFile) ? readFileSync(adminAddressFile, 'utf8').trim() : '';
          if (!/^[\w.:[\]-]+:\d+$/.test(written)) return false;
          admin = `http://${written}`;
        }
        return (await fetch(`${admin}/ready`)).status === 200;
      },
      timeoutMs,
      () => `${name} did not become ready:\n${child.output().slice(-4000)}`,
    );
  const adminUrl = (): string => {
    if (admin === undefined) throw new Error(`${name}'s admin address is not known before it is ready`);
    return admin;
  };

  if (waitUntil === 'ready') await untilReady();
  return {
    name,
    configFile,
    process: child,
    untilReady,
    admin: adminUrl,
    async stat(statName) {
      const exactly = encodeURIComponent(`^${statName.replace(/\./g, '\\.')}$`);
      const text = await (await fetch(`${adminUrl()}/stats?filter=${exactly}`)).text();
      const match = /: (\d+)/.exec(text);
      return match ? Number(match[1]) : 0;
    },
    stop: () => child.stop('SIGTERM', 3000),
  };
}

/** The ports written in envoy/envoy.yaml, by role. */
const ENVOY_YAML_PORTS = {
  ingress: 10000,
  egress: 15001,
  readiness: 15021,
  app: 8080,
  sidecar: 9191,
  admin: 9901,
  vmcontroller: 18081,
} as const;

export type EnvoyPorts = { -readonly [K in keyof typeof ENVOY_YAML_PORTS]: number };

export interface RunningEnvoy extends EnvoyProcess {
  readonly ports: EnvoyPorts;
}

/** Kubernetes Service names in envoy/envoy.yaml; here every upstream runs on loopback. */
const SERVICE_NAMES = ['vmcontroller.cloud.svc.cluster.local'] as const;

const DEPLOYED_ENVOY_YAML = join(PACKAGE_ROOT, 'envoy', 'envoy.yaml');

/**
 * The deployed file must still hold every port and name this knows (else the tests would quietly
 * stop covering part of it); a test's own variant holds only what it uses.
 */
function rewriteForLoopback(yaml: string, ports: EnvoyPorts, strict: boolean): string {
  let out = yaml;
  for (const name of SERVICE_NAMES) {
    if (strict && !out.includes(`address: ${name},`)) throw new Error(`envoy.yaml no longer names ${name}; update SERVICE_NAMES`);
    out = out.replaceAll(`address: ${name},`, 'address: 127.0.0.1,');
  }
  for (const [role, original] of Object.entries(ENVOY_YAML_PORTS)) {
    const pattern = new RegExp(`port_value: ${original}\\b`, 'g');
    if (!pattern.test(out) && strict) throw new Error(`envoy.yaml no longer has port ${original} (${role}); update ENVOY_YAML_PORTS`);
    out = out.replace(pattern, `port_value: ${ports[role as keyof EnvoyPorts]}`);
  }
  return out;
}

/** Ports Envoy itself listens on; everything else names a process the test already started. */
const OWN_PORTS = ['ingress', 'egress', 'readiness', 'admin'] as const;
const LISTENER_ROLES = ['ingress', 'egress', 'readiness'] as const;

interface ListenerStatus {
  name: string;
  local_address?: { socket_address?: { port_value?: number } };
}

/** The ports Envoy bound for its listeners and admin, read back from its admin listener. */
async function readBoundPorts(envoy: EnvoyProcess, ports: EnvoyPorts): Promise<void> {
  const admin = envoy.admin();
  ports.admin = Number(admin.slice(admin.lastIndexOf(':') + 1));
  const listeners = (await (await fetch(`${admin}/listeners?format=json`)).json()) as { listener_statuses: ListenerStatus[] };
  for (const listener of listeners.listener_statuses) {
    const port = listener.local_address?.socket_address?.port_value;
    const role = LISTENER_ROLES.find((name) => name === listener.name);
    if (role !== undefined && port) ports[role] = port;
  }
}

/**
 * envoy/envoy.yaml (or `configFile`, a test's variant of it) with its upstreams at the ports in
 * `overrides` (free ports for those not given) and its own listeners on ports it picks.
 * `concurrency`: Envoy's worker threads (default 1).
 */
export async function startEnvoy(overrides: Partial<EnvoyPorts>, configFile = DEPLOYED_ENVOY_YAML, options: { concurrency?: number } = {}): Promise<RunningEnvoy> {
  const ports = {} as EnvoyPorts;
  for (const role of Object.keys(ENVOY_YAML_PORTS) as (keyof EnvoyPorts)[]) {
    ports[role] = overrides[role] ?? ((OWN_PORTS as readonly string[]).includes(role) ? 0 : await freePort());
  }
  const rewritten = rewriteForLoopback(readFileSync(configFile, 'utf8'), ports, configFile === DEPLOYED_ENVOY_YAML);
  const envoy = await launchEnvoy({ configFile: writeEnvoyConfig(rewritten), concurrency: options.concurrency });
  await readBoundPorts(envoy, ports);
  return { ...envoy, ports };
}
