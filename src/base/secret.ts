/**
 * Secrets never sit in the YAML itself: a secret is named by an environment variable or a file,
 * and resolved once at load. Resolved values are kept out of logs (see observability/logger.ts).
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { resolveConfigPath } from './paths.js';

export const secretRefSchema = z
  .union([
    z.strictObject({ env: z.string().min(1).describe('environment variable holding the secret') }),
    z.strictObject({ file: z.string().min(1).describe('file holding the secret') }),
  ])
  .describe('{ env: NAME } or { file: PATH }');

export type SecretRef = z.infer<typeof secretRefSchema>;

class SecretError extends Error {}

/** Resolves a secret reference; trailing newlines in files are dropped. */
export function resolveSecret(ref: SecretRef, baseDir: string, env: NodeJS.ProcessEnv = process.env): string {
  if ('env' in ref) {
    const value = env[ref.env];
    if (value === undefined || value === '') throw new SecretError(`environment variable ${ref.env} is not set`);
    return value;
  }
  const path = resolveConfigPath(baseDir, ref.file);
  try {
    return readFileSync(path, 'utf8').replace(/\r?\n$/, '');
  } catch (error) {
    throw new SecretError(`cannot read secret file ${path}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`);
  }
}
