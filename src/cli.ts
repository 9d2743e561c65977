#!/usr/bin/env node
/** The `jwtauth-sidecar` binary: dispatches to src/commands/. */
import { runCli } from './commands/dispatch.js';

runCli(process.argv.slice(2), {
  out: (text) => process.stdout.write(`${text}\n`),
  err: (text) => process.stderr.write(`${text}\n`),
  env: process.env,
}).then(
  (code) => {
    if (code < 0) return; // serve: runs until a signal
    process.exitCode = code;
    // A finished command exits even if something it started left a handle open (a worker thread,
    // a socket): a refused configuration must end the process, never leave it hanging.
    setTimeout(() => process.exit(code), 2_000).unref();
  },
  (error: unknown) => {
    process.stderr.write(`jwtauth-sidecar: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
    setTimeout(() => process.exit(1), 2_000).unref();
  },
);
