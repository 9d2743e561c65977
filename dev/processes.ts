/**
 * Child processes of the development tooling (tests, the bench, the demo): Envoy, SpiceDB,
 * sidecars. Each runs in its own process group, so stopping it also stops anything it spawned, and
 * every one still alive is killed when this process ends for any reason: normal exit, a thrown
 * error, Ctrl-C or SIGTERM. A failed test, bench or demo never leaves a process holding ports.
 * Not part of the shipped sidecar (the Dockerfile removes dist/dev).
 */
import { spawn } from 'node:child_process';
import type { ChildProcess, SpawnOptions } from 'node:child_process';
import { basename, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { PACKAGE_ROOT } from '../src/base/package-root.js';

/** Where scripts/install-tools.sh links Envoy, SpiceDB and the bench peers; right from src and dist alike. */
export const TOOLS_BIN = join(PACKAGE_ROOT, '.tools', 'bin');

const live = new Set<ChildProcess>();

function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    if (child.pid !== undefined) process.kill(-child.pid, signal);
  } catch {
    child.kill(signal);
  }
}

/** Synchronous on purpose: it also runs from the 'exit' event, where nothing async gets to run. */
function killAllChildren(): void {
  for (const child of live) signalGroup(child, 'SIGKILL');
  live.clear();
}

const exitCleanups = new Set<() => void>();

/** Registers synchronous clean-up (e.g. removing a temporary directory) for when the process exits; returns its removal. */
export function atExit(cleanup: () => void): () => void {
  exitCleanups.add(cleanup);
  return () => exitCleanups.delete(cleanup);
}

process.once('exit', () => {
  killAllChildren();
  for (const cleanup of exitCleanups) {
    try {
      cleanup();
    } catch {
      // best effort: the process is exiting anyway
    }
  }
});

let announceStop: ((signal: NodeJS.Signals) => void) | undefined;

/** Says something (e.g. to a person at a terminal) before a SIGINT or SIGTERM stops everything. */
export function onStopSignal(announce: (signal: NodeJS.Signals) => void): void {
  announceStop = announce;
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    announceStop?.(signal);
    killAllChildren();
    process.exit(130);
  });
}

export interface StartOptions extends SpawnOptions {
  /** For messages; defaults to the command's file name. */
  readonly name?: string;
  /** Called with every complete line the process writes to stdout or stderr. */
  readonly onLine?: (line: string) => void;
}

export interface ManagedProcess {
  readonly name: string;
  readonly child: ChildProcess;
  /** The last ~100 KB the process wrote to stdout and stderr (for failure messages). */
  output(): string;
  /** Sends `signal` to the process group and waits for exit (SIGKILL after `graceMs`). */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<void>;
  readonly exited: Promise<number | null>;
}

export function startProcess(command: string, args: readonly string[], options: StartOptions = {}): ManagedProcess {
  const { name = basename(command), onLine, ...spawnOptions } = options;
  // detached: its own process group, so stop() also reaches grandchildren (e.g. Envoy's hot-restart helpers).
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true, ...spawnOptions });
  live.add(child);
  let log = '';
  const collector = (): ((chunk: Buffer) => void) => {
    let partial = '';
    return (chunk) => {
      const text = chunk.toString('utf8');
      log += text;
      if (log.length > 200_000) log = log.slice(-100_000);
      if (!onLine) return;
      const lines = (partial + text).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) onLine(line);
    };
  };
  child.stdout?.on('data', collector());
  child.stderr?.on('data', collector());
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => {
      live.delete(child);
      resolve(code);
    });
    child.once('error', (error) => {
      log += `spawn error: ${error.message}\n`;
      live.delete(child);
      resolve(-1);
    });
  });
  return {
    name,
    child,
    exited,
    output: () => log,
    async stop(signal = 'SIGTERM', graceMs = 5000) {
      if (child.exitCode !== null || child.signalCode !== null || !live.has(child)) return;
      signalGroup(child, signal);
      const timer = setTimeout(() => signalGroup(child, 'SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Thrown by a `waitFor` probe to stop waiting at once (e.g. the process already exited). */
export class GiveUp extends Error {}

/** Polls `probe` until it returns true, failing with `describe()` after `timeoutMs`. */
export async function waitFor(probe: () => Promise<boolean> | boolean, timeoutMs: number, describe: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await probe()) return;
    } catch (error) {
      if (error instanceof GiveUp) throw new Error(`${error.message}: ${describe()}`, { cause: error });
      // otherwise: not yet
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${describe()}`);
    await sleep(50);
  }
}
