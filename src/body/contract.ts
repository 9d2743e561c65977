/**
 * The vocabulary shared by the body readers: what a reader is given, what it answers, and the
 * error that stops a bad configuration at load. Readers never throw per request; every failure is
 * a refusal with a reason from this closed list, so the caller can deny with a stable reason.
 */
import type { DenyReason } from '../core/decision.js';
import type { RequestBody } from '../core/request-context.js';

/** The deny reasons a body reader can give; their statuses and texts live in core's DENY_REASONS. */
export type BodyRefusal = Extract<DenyReason, `body_${string}`>;

/** What Envoy sent: defined with the request context, since the Envoy adapter builds it. */
export type { RequestBody } from '../core/request-context.js';

export type BodyRead =
  | { readonly ok: true; readonly value: ReadonlyMap<string, string> }
  /** `detail` is for operators: it names the path or field, never a field's value (values may be secrets). */
  | { readonly ok: false; readonly reason: BodyRefusal; readonly detail: string };

export interface BodyReader {
  read(body: RequestBody | undefined): BodyRead;
  readonly paths: readonly string[];
}

export type BodyRefused = Extract<BodyRead, { ok: false }>;

export class BodyConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BodyConfigError';
  }
}

export function refuse(reason: BodyRefusal, detail: string): BodyRefused {
  return { ok: false, reason, detail };
}
