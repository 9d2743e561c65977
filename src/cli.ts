#!/usr/bin/env node
/** The `jwtauth-sidecar` binary: dispatches to src/commands/, and is the one place the process ends. */
import { runCli } from './commands/dispatch.js';

/**
 * Ends the process with `code` once what it wrote has been flushed, even if something a command
 * started left a handle open (a worker thread, a socket): a refused configuration, or a drained
 * sidecar, must end the process, never leave it hanging.
 */
function exitWith(code: number): void {
  process.exitCode = code;
  process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
}

runCli(process.argv.slice(2), {
  out: (text) => process.stdout.write(`${text}\n`),
  err: (text) => process.stderr.write(`${text}\n`),
  env: process.env,
}).then(exitWith, (error: unknown) => {
  process.stderr.write(`jwtauth-sidecar: ${error instanceof Error ? error.message : String(error)}\n`);
  exitWith(1);
});
