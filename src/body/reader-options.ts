/**
 * The load-time checks both readers share on what they were asked to read and how much.
 */
import { BodyConfigError } from './contract.js';
import type { BodyRead, BodyReader, RequestBody } from './contract.js';

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

/** A reader whose read() cannot throw: a bug in decoding is a refusal (`onThrow`), never an exception on the request path. */
export function readerOf(paths: readonly string[], read: (body: RequestBody | undefined) => BodyRead, onThrow: (error: unknown) => BodyRead): BodyReader {
  return {
    paths,
    read(body) {
      try {
        return read(body);
      } catch (error) {
        return onThrow(error);
      }
    },
  };
}
