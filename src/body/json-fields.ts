/**
 * Body paths over a parsed JSON object (`spec.cloud.id`): dots walk into objects (own properties
 * only, never arrays), and the leaf renders like a claim does: strings as they are, finite numbers
 * as JavaScript prints them, booleans as `true`/`false`. A key that itself contains a dot cannot be
 * named.
 *
 * JSON numbers are IEEE doubles here, so an integer beyond 2^53 arrives already rounded and renders
 * rounded (`12345678901234567890` → `12345678901234567000`), and `1e21` renders as `1e+21`. Callers
 * that put ids in JSON bodies should send them as strings.
 */
import { BodyConfigError, refuse } from './contract.js';
import type { BodyRead } from './contract.js';

interface CompiledPath {
  readonly path: string;
  readonly keys: readonly string[];
  readonly absent: BodyRead;
}

export interface JsonPaths {
  extract(document: Readonly<Record<string, unknown>>): BodyRead;
}

function render(value: unknown): string | undefined {
  if (typeof value === 'string') return value === '' ? undefined : value;
  if (typeof value === 'number') return Number.isFinite(value) ? String(value) : undefined;
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  return undefined;
}

/** `context(path)` prefixes every error, e.g. `rules[2].checks[0]: body path "x"`. */
export function compileJsonPaths(paths: readonly string[], context: (path: string) => string): JsonPaths {
  const compiled: CompiledPath[] = paths.map((path) => {
    const keys = path.split('.');
    if (keys.some((key) => key === '')) throw new BodyConfigError(`${context(path)}: has an empty segment`);
    return {
      path,
      keys,
      absent: refuse('body_field_missing', `body field "${path}" is absent, empty, null, or not a string, number or boolean`),
    };
  });
  return {
    extract(document) {
      const values = new Map<string, string>();
      for (const path of compiled) {
        let current: unknown = document;
        for (const key of path.keys) {
          if (current === null || typeof current !== 'object' || Array.isArray(current) || !Object.hasOwn(current, key)) {
            return path.absent;
          }
          current = (current as Record<string, unknown>)[key];
        }
        const text = render(current);
        if (text === undefined) return path.absent;
        values.set(path.path, text);
      }
      return { ok: true, value: values };
    },
  };
}
