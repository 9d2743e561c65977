/**
 * The vocabulary shared by the body readers: what a reader is given, what it answers, and the
 * error that stops a bad configuration at load. Readers never throw per request; every failure is
 * a refusal with a reason from this closed list, so the caller can deny with a stable reason.
 */
import type { DenyReason } from '../core/decision.js';
import type { RequestBody } from '../core/request-context.js';
import { failure } from '../core/result.js';
import type { Failure, Result } from '../core/result.js';

/** The deny reasons a body reader can give; their statuses and texts live in core's DENY_REASONS. */
export type BodyRefusal = Extract<DenyReason, `body_${string}`>;

/** What Envoy sent: defined with the request context, since the Envoy adapter builds it. */
export type { RequestBody } from '../core/request-context.js';

/** `detail` is for operators: it names the path or field, never a field's value (values may be secrets). */
export type BodyRead = Result<ReadonlyMap<string, string>, BodyRefusal>;

export interface BodyReader {
  read(body: RequestBody | undefined): BodyRead;
  readonly paths: readonly string[];
}

export type BodyRefused = Failure<BodyRefusal>;

export class BodyConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BodyConfigError';
  }
}

/** A refusal always says which path or field: a body denial without one cannot be acted on. */
export function refuse(reason: BodyRefusal, detail: string): BodyRefused {
  return failure(reason, detail);
}
