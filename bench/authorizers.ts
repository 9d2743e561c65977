/**
 * Starts what answers Envoy's ext_authz calls in a scenario group (dev/bench/scenarios.ts), alone on
 * the authorizer's core, and waits until it answers.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../dev/ports.js';
import { startProcess, TOOLS_BIN, waitFor } from '../dev/processes.js';
import type { ManagedProcess } from '../dev/processes.js';
import { launchSidecar, writeSidecarConfig } from '../dev/sidecar.js';
import type { SidecarProcess } from '../dev/sidecar.js';
import type { SpicedbServer } from '../dev/spicedb.js';
import { PACKAGE_ROOT } from '../src/base/package-root.js';
import { opaPolicy, sidecarConfig } from '../dev/bench/fixtures.js';
import { startOtlpSink } from './otlp-sink.js';
import type { BenchKeys } from '../dev/bench/fixtures.js';
import { AUTHZ_CPUS, FRONT_CPUS, pin } from './pinning.js';
import { childProcesses } from '../dev/proc.js';
import { SHIPPED_NODE_ARGS } from '../dev/node-flags.js';
import type { Authorizer } from '../dev/bench/scenarios.js';

/** What every authorizer of a run shares. */
export interface Workspace {
  /** The run's work directory: policies, URI lists, profiles. */
  readonly dir: string;
  readonly keys: BenchKeys;
  readonly spicedb: SpicedbServer;
  /** The environment variable the sidecar reads SpiceDB's preshared key from. */
  readonly keyEnv: string;
  /** Run sidecars under `node --cpu-prof`. */
  readonly profile: boolean;
}

export interface RunningAuthorizer {
  /** Undefined when Envoy answers by itself. */
  readonly pid: number | undefined;
  readonly grpcPort: number | undefined;
  /** Set for the sidecar, whose metrics scenarios read. */
  readonly sidecar?: SidecarProcess;
  /** Where its CPU profile is written when it stops, under --profile. */
  readonly cpuProfile?: string;
  stop(): Promise<void>;
}

/** Stops `started` when the rest of its start-up fails, so it never holds a port or a core. */
async function stopOnFailure<T extends { stop(): Promise<void> }>(started: T, rest: () => Promise<void>): Promise<T> {
  try {
    await rest();
    return started;
  } catch (error) {
    await started.stop();
    throw error;
  }
}

function fromProcess(running: ManagedProcess, grpcPort: number): RunningAuthorizer {
  return { pid: running.child.pid, grpcPort, stop: () => running.stop('SIGTERM', 3000) };
}

async function startOpaEnvoy(rawHeaders: boolean, workspace: Workspace): Promise<RunningAuthorizer> {
  const policy = join(workspace.dir, `opa-envoy-${rawHeaders ? 'raw-headers' : 'classic'}.rego`);
  writeFileSync(policy, opaPolicy(workspace.keys, rawHeaders));
  const [grpcPort, httpPort, diagPort] = [await freePort(), await freePort(), await freePort()];
  const opa = startProcess(join(TOOLS_BIN, 'opa-envoy-plugin'), [
    'run', '--server', '--addr', `127.0.0.1:${httpPort}`, '--diagnostic-addr', `127.0.0.1:${diagPort}`, '--log-level', 'error',
    '--set', `plugins.envoy_ext_authz_grpc.addr=127.0.0.1:${grpcPort}`,
    '--set', 'plugins.envoy_ext_authz_grpc.path=envoy/authz/allow',
    '--set', 'decision_logs.console=false',
    policy,
  ]);
  return stopOnFailure(fromProcess(opa, grpcPort), async () => {
    pin(opa.child.pid, AUTHZ_CPUS);
    await waitFor(async () => (await fetch(`http://127.0.0.1:${httpPort}/health?plugins`)).status === 200, 20_000, () => `OPA-Envoy not healthy:\n${opa.output()}`);
  });
}

/** Either null authorizer; both print "listening <port>" when they accept connections. */
async function startGrpcFloor(stack: 'node' | 'go', nodeArgs: readonly string[]): Promise<RunningAuthorizer> {
  const port = await freePort();
  const floor =
    stack === 'go'
      ? startProcess(join(TOOLS_BIN, 'go-null-authorizer'), [String(port)])
      : startProcess(process.execPath, [...nodeArgs, join(PACKAGE_ROOT, 'dist/bench/null-authorizer.js'), String(port)]);
  return stopOnFailure(fromProcess(floor, port), async () => {
    pin(floor.child.pid, AUTHZ_CPUS);
    await waitFor(() => floor.output().includes('listening'), 10_000, () => `${stack} null authorizer did not start:\n${floor.output()}`);
  });
}

/**
 * The build the sidecar runs: the baseline build for a scenario that asks for it, else
 * BENCH_SIDECAR_CLI (another build, e.g. a worktree at an older commit) or this one.
 */
function sidecarCli(authorizer: Extract<Authorizer, { kind: 'sidecar' }>): string | undefined {
  if (authorizer.build !== 'baseline') return process.env.BENCH_SIDECAR_CLI;
  const baseline = process.env.BENCH_BASELINE_SIDECAR_CLI;
  if (!baseline) throw new Error(`sidecar ${authorizer.name} runs the baseline build: set BENCH_BASELINE_SIDECAR_CLI to its dist/src/cli.js`);
  return baseline;
}

async function startBenchSidecar(authorizer: Extract<Authorizer, { kind: 'sidecar' }>, workspace: Workspace): Promise<RunningAuthorizer> {
  const { dir, keys, spicedb, keyEnv } = workspace;
  // BENCH_SIDECAR_NODE_ARGS (e.g. --trace-gc) for investigations; BENCH_SIDECAR_OUTPUT keeps what it printed.
  const nodeArgs = [...(authorizer.nodeArgs ?? SHIPPED_NODE_ARGS), ...(process.env.BENCH_SIDECAR_NODE_ARGS ?? '').split(' ').filter(Boolean)];
  let cpuProfile: string | undefined;
  if (workspace.profile) {
    const profileDir = join(dir, 'profiles');
    mkdirSync(profileDir, { recursive: true });
    cpuProfile = join(profileDir, `${authorizer.name}.cpuprofile`);
    nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${profileDir}`, `--cpu-prof-name=${authorizer.name}.cpuprofile`);
  }
  const otlpSink = authorizer.variant.tracing ? await startOtlpSink() : undefined;
  const sidecar = await launchSidecar({
    configFile: writeSidecarConfig(
      sidecarConfig(keys, spicedb.endpoint, keyEnv, authorizer.variant, otlpSink?.endpoint),
      mkdtempSync(join(tmpdir(), 'jwtauth-bench-config-')),
    ),
    name: `sidecar ${authorizer.name}`,
    cli: sidecarCli(authorizer),
    nodeArgs,
    env: { [keyEnv]: spicedb.presharedKey },
    cwd: dir,
    startTimeoutMs: 60_000,
    // SIGTERM: the sidecar drains (drainSeconds 0) and exits, so --cpu-prof gets to write its file.
    stopGraceMs: 15_000,
  });
  const pid = sidecar.process.child.pid;
  const keep = process.env.BENCH_SIDECAR_OUTPUT;
  if (keep) sidecar.process.exited.then(() => writeFileSync(`${keep}.${authorizer.name}.log`, sidecar.process.output()), () => undefined);
  const stop = async (): Promise<void> => {
    await sidecar.stop();
    await otlpSink?.close();
  };
  return stopOnFailure({ pid, grpcPort: sidecar.grpcPort, sidecar, cpuProfile, stop }, async () => {
    pin(pid, AUTHZ_CPUS);
    // Worker mode: one worker per core, the first on the authorizer's own, the next sharing the
    // front core with Envoy and the load generator (this machine has no third).
    childProcesses(pid ?? -1).forEach((worker, index) => pin(worker, index % 2 === 0 ? AUTHZ_CPUS : (FRONT_CPUS ?? AUTHZ_CPUS)));
  });
}

export function startAuthorizer(authorizer: Authorizer, workspace: Workspace): Promise<RunningAuthorizer> {
  switch (authorizer.kind) {
    case 'none':
      return Promise.resolve({ pid: undefined, grpcPort: undefined, stop: () => Promise.resolve() });
    case 'opa-envoy':
      return startOpaEnvoy(authorizer.rawHeaders, workspace);
    case 'grpc-floor':
      return startGrpcFloor(authorizer.stack, authorizer.nodeArgs ?? SHIPPED_NODE_ARGS);
    case 'sidecar':
      return startBenchSidecar(authorizer, workspace);
  }
}
