/**
 * Reads a file that someone may be writing at that very moment. `cp`, `kubectl cp`, an editor
 * saving in place or `echo … > file` truncate the file and then write it: a read in between gets
 * an empty or half-written file, and a half-written YAML file is often still valid YAML. So the
 * file is read until two consecutive reads, a short pause apart, see the same thing.
 *
 * Synchronous on purpose: the configuration is loaded through synchronous functions (commands,
 * serve's reload), and the pause happens once per load, never on the request path. It blocks
 * the event loop for one pause in the usual case (two identical reads) and for
 * `attempts - 1` pauses at most.
 */
import { readFileSync } from 'node:fs';

/** The file never read the same twice in a row: a writer is still at it (or is rewriting it in a loop). */
export class UnsettledFileError extends Error {}

export interface SettledReadOptions {
  /** Reads at most this many times (at least 2). */
  readonly attempts?: number;
  /** Between two reads: longer than the gap between a truncate and the write that follows it. */
  readonly pauseMs?: number;
}

/** One read: the bytes, or the error (ENOENT while a file is deleted and created again is one). */
type Snapshot = { readonly bytes: Buffer } | { readonly error: NodeJS.ErrnoException };

const DEFAULT_ATTEMPTS = 10;
const DEFAULT_PAUSE_MS = 25;

/** A synchronous sleep: waits on a cell nobody ever notifies. */
const nobodyNotifies = new Int32Array(new SharedArrayBuffer(4));
function pauseSync(ms: number): void {
  Atomics.wait(nobodyNotifies, 0, 0, ms);
}

function snapshot(path: string): Snapshot {
  try {
    return { bytes: readFileSync(path) };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (typeof code !== 'string') throw error;
    return { error: error as NodeJS.ErrnoException };
  }
}

function sameSnapshot(a: Snapshot, b: Snapshot): boolean {
  if ('bytes' in a && 'bytes' in b) return a.bytes.equals(b.bytes);
  if ('error' in a && 'error' in b) return a.error.code === b.error.code;
  return false;
}

/**
 * The file's bytes once two consecutive reads agree. Two reads that fail the same way (a missing
 * file) throw that error; a file that never reads the same twice in `attempts` reads throws
 * UnsettledFileError.
 */
export function readSettledFile(path: string, options: SettledReadOptions = {}): Buffer {
  const attempts = Math.max(2, options.attempts ?? DEFAULT_ATTEMPTS);
  const pauseMs = options.pauseMs ?? DEFAULT_PAUSE_MS;
  let previous = snapshot(path);
  for (let read = 2; read <= attempts; read++) {
    pauseSync(pauseMs);
    const current = snapshot(path);
    if (sameSnapshot(previous, current)) {
      if ('error' in current) throw current.error;
      return current.bytes;
    }
    previous = current;
  }
  throw new UnsettledFileError(`the file kept changing while being read (${attempts} reads, ${pauseMs} ms apart); is something still writing it?`);
}
