/**
 * Runs the real Envoy (installed by scripts/install-tools.sh) with envoy/envoy.yaml, changing
 * nothing but port numbers, so the tests exercise the file users deploy.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TOOLS_BIN, freePort, startProcess, waitFor } from './processes.js';
import type { ManagedProcess } from './processes.js';

/** The ports written in envoy/envoy.yaml, by role. */
export const ENVOY_YAML_PORTS = {
  ingress: 10000,
  egress: 15001,
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

export function rewritePorts(yaml: string, ports: EnvoyPorts): string {
  let out = yaml;
  for (const [role, original] of Object.entries(ENVOY_YAML_PORTS)) {
    const pattern = new RegExp(`port_value: ${original}\\b`, 'g');
    if (!pattern.test(out)) throw new Error(`envoy.yaml no longer has port ${original} (${role}); update ENVOY_YAML_PORTS`);
    out = out.replace(pattern, `port_value: ${ports[role as keyof EnvoyPorts]}`);
  }
  return out;
}

export async function startEnvoy(overrides: Partial<EnvoyPorts>, configFile = new URL('../../envoy/envoy.yaml', import.meta.url).pathname): Promise<RunningEnvoy> {
  const ports = {} as EnvoyPorts;
  for (const role of Object.keys(ENVOY_YAML_PORTS) as (keyof EnvoyPorts)[]) ports[role] = overrides[role] ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), 'jwtauth-envoy-'));
  const config = join(dir, 'envoy.yaml');
  writeFileSync(config, rewritePorts(readFileSync(configFile, 'utf8'), ports));
  const process = startProcess(join(TOOLS_BIN, 'envoy'), [
    '-c', config,
    '--base-id', String(Math.floor(Math.random() * 1_000_000)),
    '--log-level', 'warn',
    '--concurrency', '1',
    '--disable-hot-restart',
  ]);
  const admin = `http://127.0.0.1:${ports.admin}`;
  await waitFor(
    async () => (await fetch(`${admin}/ready`)).status === 200,
    20_000,
    () => `Envoy did not become ready:\n${process.output()}`,
  );
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
