/**
 * The one shape every port answers with: token verification, permission checks and token
 * sources alike. A failure names its deny reason, so it becomes a decision without a mapping
 * table at each call site; `detail` is operator-facing and never reaches the caller.
 */
import type { Awaitable } from './awaitable.js';
import type { DenyReason } from './decision.js';

export interface Failure {
  readonly ok: false;
  readonly reason: DenyReason;
  readonly detail?: string;
}

export type Result<T> = { readonly ok: true; readonly value: T } | Failure;

export function success<T>(value: T): Result<T> {
  return { ok: true, value };
}

export function failure(reason: DenyReason, detail?: string): Failure {
  return detail === undefined ? { ok: false, reason } : { ok: false, reason, detail };
}

/**
 * The single policy for a port that throws instead of answering: that is a bug, not an outage,
 * so it is an internal_error (500) wherever it happens, and still never an allow.
 */
export function thrown(error: unknown, what: string): Failure {
  return failure('internal_error', `${what} failed unexpectedly: ${error instanceof Error ? error.message : String(error)}`);
}

/**
 * Calls a port so that a throw or a rejection becomes `thrown()`: the decision core applies this
 * at every port call, so no port bug can escape as an exception or turn into an allow.
 */
export function settled<T>(call: () => Awaitable<Result<T>>, what: string): Awaitable<Result<T>> {
  try {
    const result = call();
    return result instanceof Promise ? result.catch((error: unknown) => thrown(error, what)) : result;
  } catch (error) {
    return thrown(error, what);
  }
}
