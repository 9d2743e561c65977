/**
 * Reads, validates and fingerprints the configuration. Every problem in a file is reported at
 * once, each naming the key path, the value found and what was expected, so an operator fixes a
 * file in one pass.
 */
import { createHash } from 'node:crypto';
import { dirname, resolve } from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import type { z } from 'zod';
import { configSchema } from './schema.js';
import type { Config } from './schema.js';
import { readSettledFile, UnsettledFileError } from '../base/settled-read.js';
import { configSource, describeYamlErrors } from './yaml-problems.js';
import type { ConfigSource } from './yaml-problems.js';

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
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch {
    // A YAML alias that contains itself (`a: &a [*a]`) parses into a cycle.
    return 'a value that contains itself (a YAML alias loop)';
  }
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

/**
 * zod says "Too small: expected number to be >=0"; keep its words, but as the tail of our sentence.
 * Its "Invalid URL" names what is wrong, not what is wanted: that reads "expected a valid URL".
 */
function expectation(message: string): string {
  const text = message.charAt(0).toLowerCase() + message.slice(1);
  if (/\bexpected\b/.test(text)) return text;
  const invalid = /^invalid (.+)$/.exec(text);
  return invalid ? `expected a valid ${invalid[1]}` : `expected ${text}`;
}

/**
 * One line per zod issue: `key.path: got VALUE; expected WHAT`. Unions report each branch's complaint
 * once. With the YAML source at hand, text that YAML read as a mapping because of its `{…}` is
 * explained with its line and the quoted value instead.
 */
function formatIssues(issues: readonly z.core.$ZodIssue[], input: unknown, source?: ConfigSource, prefix: readonly PropertyKey[] = []): string[] {
  const lines: string[] = [];
  for (const issue of issues) {
    const path = [...prefix, ...issue.path];
    const unquotedTemplate = issue.code === 'invalid_type' && issue.expected === 'string' ? source?.unquotedTemplateAt(path) : undefined;
    if (unquotedTemplate !== undefined) {
      lines.push(`${formatPath(path)}: ${unquotedTemplate}`);
      continue;
    }
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) lines.push(`${formatPath([...path, key])}: unknown key; check its spelling and nesting`);
      continue;
    }
    if (issue.code === 'invalid_union' && issue.errors.length > 0) {
      const nested = issue.errors.flatMap((branch) => formatIssues(branch, input, source, path));
      lines.push(`${formatPath(path)}: got ${describeValue(valueAt(input, path))}; expected one of the accepted forms:`);
      lines.push(...new Set(nested.map((line) => `  ${line}`)));
      continue;
    }
    // A problem with the whole document (no section at all) is not about a value worth printing.
    if (path.length === 0) lines.push(`${formatPath(path)}: ${expectation(issue.message)}`);
    else lines.push(`${formatPath(path)}: got ${describeValue(valueAt(input, path))}; ${expectation(issue.message)}`);
  }
  return lines;
}

/** Validates an already-parsed document (from YAML, with its source for explanations, or the embedded defaults). */
export function validateConfig(input: unknown, origin: string, baseDir: string, source?: ConfigSource): LoadedConfig {
  const result = configSchema.safeParse(input ?? {});
  if (!result.success) throw new ConfigError(origin, formatIssues(result.error.issues, input, source));
  const hash = createHash('sha256').update(JSON.stringify(result.data)).digest('hex').slice(0, 12);
  return { config: result.data, hash, baseDir, origin };
}

/** Parses YAML text; syntax errors are reported with line and column, all of them, with the likely fix. */
export function parseConfigText(text: string, origin: string, baseDir: string): LoadedConfig {
  const lineCounter = new LineCounter();
  const document = parseDocument(text, { prettyErrors: true, uniqueKeys: true, lineCounter });
  if (document.errors.length > 0) throw new ConfigError(origin, describeYamlErrors(text, document.errors));
  let value: unknown;
  try {
    value = document.toJS({ maxAliasCount: 100 });
  } catch (error) {
    // An alias with no anchor (`a: *b`), or an alias bomb past maxAliasCount: yaml throws here,
    // after parsing succeeded. Reported like every other problem, never as a stack trace.
    throw new ConfigError(origin, [`YAML alias error: ${(error as Error).message.split('\n')[0]}`]);
  }
  return validateConfig(value, origin, baseDir, configSource(text, document, lineCounter));
}

export function loadConfigFile(path: string): LoadedConfig {
  const absolute = resolve(path);
  let text: string;
  try {
    // Settled: a reload that lands while `cp` or an editor is mid-write must not read half a file.
    text = readSettledFile(absolute).toString('utf8');
  } catch (error) {
    if (error instanceof UnsettledFileError) throw new ConfigError(absolute, [error.message]);
    throw new ConfigError(absolute, [`cannot read the file: ${(error as NodeJS.ErrnoException).code ?? String(error)}`]);
  }
  return parseConfigText(text, absolute, dirname(absolute));
}
