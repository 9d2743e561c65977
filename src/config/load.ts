/**
 * Reads, validates and fingerprints the configuration. Every problem in a file is reported at
 * once, each naming the key path, the value found and what was expected, so an operator fixes a
 * file in one pass.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { configSchema } from './schema.js';
import type { Config } from './schema.js';

export interface LoadedConfig {
  readonly config: Config;
  /** sha256 of the validated config, first 12 hex chars: the `hash` label of jwtauth_config_info. */
  readonly hash: string;
  /** Relative file paths in the config resolve against this directory. */
  readonly baseDir: string;
  /** Where it came from: a file path, or `embedded defaults`. */
  readonly origin: string;
}

export class ConfigError extends Error {
  constructor(
    readonly origin: string,
    readonly problems: readonly string[],
  ) {
    super(`invalid configuration in ${origin}:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  const text = JSON.stringify(value);
  if (text === undefined) return String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let node = root;
  for (const key of path) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<PropertyKey, unknown>)[key];
  }
  return node;
}

function formatPath(path: readonly PropertyKey[]): string {
  if (path.length === 0) return '(top level)';
  return path.map((key, i) => (typeof key === 'number' ? `[${key}]` : `${i === 0 ? '' : '.'}${String(key)}`)).join('');
}

/** zod says "Too small: expected number to be >=0"; keep its words, but as the tail of our sentence. */
function expectation(message: string): string {
  const text = message.charAt(0).toLowerCase() + message.slice(1);
  return /\bexpected\b/.test(text) ? text : `expected ${text}`;
}

/** One line per zod issue: `key.path: got VALUE; expected WHAT`. Unions report each branch's complaint once. */
function formatIssues(issues: readonly z.core.$ZodIssue[], input: unknown, prefix: readonly PropertyKey[] = []): string[] {
  const lines: string[] = [];
  for (const issue of issues) {
    const path = [...prefix, ...issue.path];
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) lines.push(`${formatPath([...path, key])}: unknown key; check its spelling and nesting`);
      continue;
    }
    if (issue.code === 'invalid_union' && issue.errors.length > 0) {
      const nested = issue.errors.flatMap((branch) => formatIssues(branch, input, path));
      lines.push(`${formatPath(path)}: got ${describeValue(valueAt(input, path))}; expected one of the accepted forms:`);
      lines.push(...new Set(nested.map((line) => `  ${line}`)));
      continue;
    }
    lines.push(`${formatPath(path)}: got ${describeValue(valueAt(input, path))}; ${expectation(issue.message)}`);
  }
  return lines;
}

/** Validates an already-parsed document (from YAML, or the embedded defaults). */
export function validateConfig(input: unknown, origin: string, baseDir: string): LoadedConfig {
  const result = configSchema.safeParse(input ?? {});
  if (!result.success) throw new ConfigError(origin, formatIssues(result.error.issues, input));
  const hash = createHash('sha256').update(JSON.stringify(result.data)).digest('hex').slice(0, 12);
  return { config: result.data, hash, baseDir, origin };
}

/** Parses YAML text; syntax errors are reported with line and column, all of them. */
export function parseConfigText(text: string, origin: string, baseDir: string): LoadedConfig {
  const document = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (document.errors.length > 0) {
    throw new ConfigError(
      origin,
      document.errors.map((error) => `YAML ${error.code} at line ${error.linePos?.[0]?.line ?? '?'}, column ${error.linePos?.[0]?.col ?? '?'}: ${error.message.split('\n')[0]}`),
    );
  }
  let value: unknown;
  try {
    value = document.toJS({ maxAliasCount: 100 });
  } catch (error) {
    // An alias with no anchor (`a: *b`), or an alias bomb past maxAliasCount: yaml throws here,
    // after parsing succeeded. Reported like every other problem, never as a stack trace.
    throw new ConfigError(origin, [`YAML alias error: ${(error as Error).message.split('\n')[0]}`]);
  }
  return validateConfig(value, origin, baseDir);
}

export function loadConfigFile(path: string): LoadedConfig {
  const absolute = resolve(path);
  let text: string;
  try {
    text = readFileSync(absolute, 'utf8');
  } catch (error) {
    throw new ConfigError(absolute, [`cannot read the file: ${(error as NodeJS.ErrnoException).code ?? String(error)}`]);
  }
  return parseConfigText(text, absolute, dirname(absolute));
}
