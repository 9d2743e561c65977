import { parseArgs } from 'node:util';
import type { ParseArgsConfig } from 'node:util';
import { ConfigError } from '../config/load.js';
import type { LoadedConfig } from '../config/load.js';
import { resolveConfig } from '../config/resolve.js';

export interface CommandIO {
  out(text: string): void;
  err(text: string): void;
  readonly env: NodeJS.ProcessEnv;
}

export interface Command {
  readonly name: string;
  readonly summary: string;
  readonly help: string;
  /** Resolves with the exit code; `serve` resolves once it has stopped. */
  run(args: readonly string[], io: CommandIO): Promise<number>;
}

export class UsageError extends Error {}

/** node:util parseArgs with strict checking, reporting problems as UsageError. */
export function parseOptions<T extends NonNullable<ParseArgsConfig['options']>>(args: readonly string[], options: T, allowPositionals = false) {
  try {
    return parseArgs({ args: [...args], options, strict: true, allowPositionals });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

/**
 * The configuration a command runs with (`--config`, else JWTAUTH_CONFIG, else embedded defaults).
 * An invalid file is reported with every problem and yields undefined; the caller picks the exit code.
 */
export function loadConfigOrReport(flag: string | undefined, io: CommandIO, adminAddress?: string): LoadedConfig | undefined {
  try {
    return resolveConfig(flag, io.env, adminAddress === undefined ? {} : { adminAddress });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    io.err(error.message);
    return undefined;
  }
}
