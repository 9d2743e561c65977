/**
 * Ports for the processes the development tooling starts (Envoy, SpiceDB, sidecars), handed out so
 * that two test files running at once never get the same one.
 *
 * Binding port 0 and closing again is not enough: the number is free only until the child binds
 * it, and in that window a parallel test file (or a restart of a server on "its" port) could be
 * handed the same number. Envoy and a SpiceDB that both believed they owned a port then talked to
 * the wrong peer: the CI run this replaces saw a schema written into another file's SpiceDB and a
 * demo request answered by another file's Envoy.
 *
 * So ports come from below the kernel's ephemeral range (outgoing connections never take them),
 * each vitest worker (VITEST_POOL_ID) draws from its own slice, and a process never hands out the
 * same number twice. Processes outside vitest (the bench, the demo) share slice 0.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

const SLICES = 8;
const SLICE_SIZE = 1024;

/** The first port of the kernel's ephemeral range; 32768 where it cannot be read (not Linux). */
function ephemeralLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > 0 ? low : 32768;
  } catch {
    return 32768;
  }
}

function sliceOf(poolId: string | undefined): number {
  const id = Number(poolId);
  return Number.isInteger(id) && id > 0 ? 1 + ((id - 1) % (SLICES - 1)) : 0;
}

const rangeEnd = ephemeralLow();
const rangeStart = rangeEnd - SLICES * SLICE_SIZE;
if (rangeStart < 1024) throw new Error(`the ephemeral port range starts at ${rangeEnd}: no room below it for test ports`);
const sliceStart = rangeStart + sliceOf(process.env.VITEST_POOL_ID) * SLICE_SIZE;
// A random start, so the next file on the same worker does not walk over ports a previous file's
// processes may still be releasing.
let cursor = Math.floor(Math.random() * SLICE_SIZE);
let handedOut = 0;

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** A port on 127.0.0.1 nothing listens on, never handed out before by this process. */
export async function freePort(): Promise<number> {
  while (handedOut < SLICE_SIZE) {
    const port = sliceStart + (cursor % SLICE_SIZE);
    cursor++;
    handedOut++;
    if (await isFree(port)) return port;
  }
  throw new Error(`all ${SLICE_SIZE} ports of ${sliceStart}-${sliceStart + SLICE_SIZE - 1} were handed out or busy`);
}
