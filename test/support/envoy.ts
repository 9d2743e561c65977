/**
 * Runs the real Envoy (installed by scripts/install-tools.sh) with envoy/envoy.yaml, changing
 * nothing but port numbers and the upstream Service names (pointed at loopback), so the tests
 * exercise the file users deploy. Envoy's own ports (ingress, egress, readiness, admin) are bound
 * to port 0 and read back from Envoy, so tests running in parallel never race for a "free" port.
 */
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../../src/base/package-root.js';
import { freePort } from '../../dev/ports.js';
import { GiveUp, TOOLS_BIN, startProcess, waitFor } from '../../dev/processes.js';
import type { ManagedProcess } from '../../dev/processes.js';

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

export interface RunningEnvoy {
  readonly ports: EnvoyPorts;
  readonly process: ManagedProcess;
  stop(): Promise<void>;
  /** Reads an Envoy stat counter/gauge by exact name from the admin port. */
  stat(name: string): Promise<number>;
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

interface ListenerStatus {
  name: string;
  local_address?: { socket_address?: { port_value?: number } };
}

/** `concurrency`: Envoy's worker threads (default 1); each keeps its own connection to the sidecar. */
export async function startEnvoy(overrides: Partial<EnvoyPorts>, configFile = DEPLOYED_ENVOY_YAML, options: { concurrency?: number } = {}): Promise<RunningEnvoy> {
  const ports = {} as EnvoyPorts;
  for (const role of Object.keys(ENVOY_YAML_PORTS) as (keyof EnvoyPorts)[]) {
    ports[role] = overrides[role] ?? ((OWN_PORTS as readonly string[]).includes(role) ? 0 : await freePort());
  }
  const dir = mkdtempSync(join(tmpdir(), 'jwtauth-envoy-'));
  const config = join(dir, 'envoy.yaml');
  const adminPath = join(dir, 'admin-address');
  writeFileSync(config, rewriteForLoopback(readFileSync(configFile, 'utf8'), ports, configFile === DEPLOYED_ENVOY_YAML));
  const process = startProcess(join(TOOLS_BIN, 'envoy'), [
    '-c', config,
    '--admin-address-path', adminPath,
    '--base-id', String(Math.floor(Math.random() * 1_000_000)),
    '--log-level', 'warn',
    '--concurrency', String(options.concurrency ?? 1),
    '--disable-hot-restart',
  ]);
  let admin = '';
  await waitFor(
    async () => {
      if (process.child.exitCode !== null) throw new GiveUp('Envoy exited');
      if (!existsSync(adminPath)) return false;
      admin = `http://${readFileSync(adminPath, 'utf8').trim()}`;
      return (await fetch(`${admin}/ready`)).status === 200;
    },
    20_000,
    () => `Envoy did not become ready:\n${process.output()}`,
  );
  ports.admin = Number(admin.slice(admin.lastIndexOf(':') + 1));
  const listeners = (await (await fetch(`${admin}/listeners?format=json`)).json()) as { listener_statuses: ListenerStatus[] };
  for (const listener of listeners.listener_statuses) {
    const port = listener.local_address?.socket_address?.port_value;
    if ((listener.name === 'ingress' || listener.name === 'egress' || listener.name === 'readiness') && port) ports[listener.name] = port;
  }
  return {
    ports,
    process,
    stop: () => process.stop('SIGTERM', 3000),
    async stat(name) {
      const text = await (await fetch(`${admin}/stats?filter=${encodeURIComponent(`^${name.replace(/\./g, '\\.')}$`)}`)).text();
      const match = /: (\d+)/.exec(text);
      return match ? Number(match[1]) : 0;
    },
  };
}
