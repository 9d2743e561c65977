#!/usr/bin/env node
/**
 * The `jwtauth-sidecar` command. Each subcommand is a small module under src/commands/; this file
 * only dispatches and owns `--version` and the top-level help.
 */
import { readFileSync } from 'node:fs';
import { COMMANDS } from './commands/index.js';
import type { CommandIO } from './commands/command.js';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

function topLevelHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    `jwtauth-sidecar ${pkg.version}: Envoy ext_authz sidecar (JWT identity + SpiceDB, tokens injected outbound)`,
    '',
    'Usage: jwtauth-sidecar <command> [options]',
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'Run `jwtauth-sidecar <command> --help` for the options of a command.',
    'Options: --version, --help',
  ].join('\n');
}

export async function runCli(argv: readonly string[], io: CommandIO): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.out(topLevelHelp());
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === '-v') {
    io.out(pkg.version);
    return 0;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    io.err(`unknown command: ${name}\n\n${topLevelHelp()}`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    io.out(command.help);
    return 0;
  }
  return command.run(rest, io);
}

const io: CommandIO = {
  out: (text) => process.stdout.write(`${text}\n`),
  err: (text) => process.stderr.write(`${text}\n`),
  env: process.env,
};

runCli(process.argv.slice(2), io).then(
  (code) => {
    // `serve` keeps running; it resolves with -1 and exits from its own signal handling.
    if (code >= 0) process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`jwtauth-sidecar: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  },
);
