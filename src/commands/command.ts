import { parseArgs } from 'node:util';
import type { ParseArgsConfig } from 'node:util';

export interface CommandIO {
  out(text: string): void;
  err(text: string): void;
  readonly env: NodeJS.ProcessEnv;
}

export interface Command {
  readonly name: string;
  readonly summary: string;
  readonly help: string;
  /** Resolves with the exit code; -1 means "keep running" (serve). */
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
