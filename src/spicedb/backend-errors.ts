/**
 * One mapping from a SpiceDB failure to a deny reason, for the gRPC client (numeric status codes)
 * and the embedded SpiceDB (Go code names in the error text) alike.
 */
import { status } from '@grpc/grpc-js';
import type { ServiceError } from '@grpc/grpc-js';
import { failure } from '../core/result.js';
import { mentionsTlsFailure } from '../base/network-error.js';
import type { Failure } from '../core/result.js';

/** Whether `error` is a failed grpc-js call (authzed-node's clients: schema, Watch). */
export function isServiceError(error: unknown): error is ServiceError {
  return error instanceof Error && typeof (error as Partial<ServiceError>).code === 'number';
}

/** A gRPC status, of a whole call or of one item of a bulk call, as a failed answer. */
export function failureForStatus(code: number, message: string): Failure {
  const detail = `${status[code] ?? code}: ${message}`.slice(0, 300);
  switch (code) {
    case status.DEADLINE_EXCEEDED:
      return failure('permission_backend_timeout', detail);
    case status.RESOURCE_EXHAUSTED:
      return failure('permission_backend_overloaded', detail);
    case status.INVALID_ARGUMENT:
    case status.FAILED_PRECONDITION:
    case status.NOT_FOUND:
      // The check names something the schema does not have, or a caveat lacks context: a rule or
      // data problem, not an outage. Still a deny.
      return failure('invalid_check_input', detail);
    case status.UNAVAILABLE:
      // grpc-js reports a failed handshake as "No connection established. Last error: unable to
      // verify the first certificate": say it is TLS, so the fix (spicedb.tls) is obvious.
      return failure('permission_backend_unavailable', mentionsTlsFailure(message) ? `TLS to SpiceDB failed: ${detail}` : detail);
    default:
      return failure('permission_backend_unavailable', detail);
  }
}

/** Go's `codes.Code` names (`FailedPrecondition`) as grpc-js status numbers (`FAILED_PRECONDITION`). */
const GO_CODE = /code = (\w+)/;

/** An embedded SpiceDB error: a plain Error whose text is Go's "rpc error: code = X desc = ...". */
export function failureForGoError(message: string): Failure {
  const name = GO_CODE.exec(message)?.[1] ?? 'Unknown';
  const code = status[name.replace(/([a-z])([A-Z])/g, '$1_$2').toUpperCase() as keyof typeof status];
  return failureForStatus(typeof code === 'number' ? code : status.UNKNOWN, message.slice(0, 280));
}
