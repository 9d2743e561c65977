/**
 * Child processes of the demo (Envoy, SpiceDB, the sidecars). Each one runs in its own process
 * group, so stopping it also stops anything it spawned, and every one still alive is killed when
 * the demo exits for any reason: normal exit, a thrown error, Ctrl-C or SIGTERM. A failed demo
 * must never leave an Envoy or a SpiceDB holding ports behind.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess, SpawnOptions } from 'node:child_process';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

const live = new Set<ChildProcess>();

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    if (child.pid !== undefined) process.kill(-child.pid, signal);
  } catch {
    child.kill(signal);
  }
}

/** Synchronous on purpose: it also runs from the 'exit' event, where nothing async gets to run. */
export function killAllChildren(): void {
  for (const child of live) killGroup(child, 'SIGKILL');
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

export interface ChildOptions {
  readonly name: string;
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
  /** Called with every complete line the process writes to stdout or stderr. */
  readonly onLine?: (line: string) => void;
}

export interface Child {
  readonly name: string;
  /** The last ~100 KB of output, for failure messages. */
  output(): string;
  readonly exited: Promise<number | null>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
  stop(graceMs?: number): Promise<void>;
}

export function startChild(command: string, args: readonly string[], options: ChildOptions): Child {
  const spawnOptions: SpawnOptions = { stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: options.env ?? process.env };
  if (options.cwd !== undefined) spawnOptions.cwd = options.cwd;
  const child = spawn(command, args, spawnOptions);
  live.add(child);
  let log = '';
  const splitter = (): ((chunk: Buffer) => void) => {
    let partial = '';
    return (chunk) => {
      const text = chunk.toString('utf8');
      log += text;
      if (log.length > 200_000) log = log.slice(-100_000);
      if (!options.onLine) return;
      const lines = (partial + text).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) options.onLine(line);
    };
  };
  child.stdout?.on('data', splitter());
  child.stderr?.on('data', splitter());
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
    name: options.name,
    output: () => log,
    exited,
    async stop(graceMs = 3000) {
      if (!live.has(child)) return;
      killGroup(child, 'SIGTERM');
      const timer = setTimeout(() => killGroup(child, 'SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** A port that was free a moment ago (the OS picks it). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Polls `probe` until it returns true; throws with `describe()` after `timeoutMs`. */
export async function waitFor(probe: () => Promise<boolean> | boolean, timeoutMs: number, describe: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await probe()) return;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${describe()}`);
    await sleep(50);
  }
}
