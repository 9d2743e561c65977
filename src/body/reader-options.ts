/**
 * The load-time checks both readers share on what they were asked to read and how much.
 */
import { BodyConfigError } from './contract.js';

/** The paths without duplicates, in first-seen order; at least one. */
export function uniquePaths(paths: readonly string[], where: string): readonly string[] {
  const unique = [...new Set(paths)];
  if (unique.length === 0) throw new BodyConfigError(`${where}: a body reader needs at least one body path`);
  return unique;
}

export function checkMaxBytes(maxBytes: number, where: string): number {
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 1) {
    throw new BodyConfigError(`${where}: the body size limit must be a positive whole number of bytes, not ${maxBytes}`);
  }
  return maxBytes;
}
