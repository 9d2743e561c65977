#!/usr/bin/env node
/** The `jwtauth-sidecar` binary: dispatches to src/commands/. */
import { runCli } from './commands/dispatch.js';

runCli(process.argv.slice(2), {
  out: (text) => process.stdout.write(`${text}\n`),
  err: (text) => process.stderr.write(`${text}\n`),
  env: process.env,
}).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`jwtauth-sidecar: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  },
);
