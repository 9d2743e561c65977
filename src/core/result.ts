/**
 * The one result shape of the request path: every port (token verification, permission checks,
 * token sources) and every step that can refuse a Check answers with it. A failure names its
 * reason from a closed vocabulary, by default a deny reason, so it becomes a decision without a
 * mapping table at each call site; `detail` is operator-facing and never reaches the caller.
 * (Configuration loading has its own shape, `Loaded<T>`, below: a problem is a sentence for the
 * operator, with no reason to map.)
 */
import type { Awaitable } from './awaitable.js';
import type { DenyReason } from './decision.js';

export interface Failure<R = DenyReason> {
  readonly ok: false;
  readonly reason: R;
  readonly detail?: string;
}

export type Result<T, R = DenyReason> = { readonly ok: true; readonly value: T } | Failure<R>;

export function success<T>(value: T): { readonly ok: true; readonly value: T } {
  return { ok: true, value };
}

export function failure<R extends string | number = DenyReason>(reason: R, detail?: string): Failure<R> {
  return detail === undefined ? { ok: false, reason } : { ok: false, reason, detail };
}

/** What reading a configuration artefact (a schema, a descriptor set) gives: its value, or one problem for the operator. */
export type Loaded<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly problem: string };

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
