/**
 * The raw SpiceDB client: one CheckPermission over gRPC with an explicit deadline, retried once
 * on UNAVAILABLE (SpiceDB recycles connections every ~30 s, so a single UNAVAILABLE is routine).
 * No caching, limits or metrics here: those are decorators (see permission-checker.ts).
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { Metadata, status } from '@grpc/grpc-js';
import type { ServiceError } from '@grpc/grpc-js';
import { v1 } from '@authzed/authzed-node';
import type { PermissionAnswer, PermissionQuery } from '../core/ports.js';
import { answerFor, failure, toCheckRequest } from './check-request.js';
import type { ClosableChecker } from './closable-checker.js';

export interface GrpcCheckerOptions {
  readonly endpoint: string;
  readonly presharedKey: string;
  readonly tls: boolean | { readonly caFile: string };
  readonly deadlineMs: number;
  readonly baseDir: string;
}

function isServiceError(error: unknown): error is ServiceError {
  return error instanceof Error && typeof (error as Partial<ServiceError>).code === 'number';
}

export function mapGrpcError(error: unknown): PermissionAnswer {
  if (!isServiceError(error)) return failure('permission_backend_unavailable', error instanceof Error ? error.message : 'unknown error');
  const detail = `${status[error.code] ?? error.code}: ${error.details}`.slice(0, 300);
  switch (error.code) {
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
    default:
      return failure('permission_backend_unavailable', detail);
  }
}

export class GrpcChecker implements ClosableChecker {
  private readonly client: v1.ZedClientInterface;
  private lastCallReachedServer = true;

  constructor(private readonly options: GrpcCheckerOptions) {
    const { endpoint, presharedKey, tls } = options;
    // Keepalive no more often than SpiceDB tolerates (it answers "too many pings" below 5 min).
    // Reconnect back-off capped at 1 s: grpc-js defaults to 1 s growing ×1.6 up to 120 s, so after a
    // SpiceDB outage of a few seconds the channel could stay in TRANSIENT_FAILURE (every check a
    // 503) for seconds after SpiceDB is back. A reconnect attempt per second is cheap.
    const channelOptions = {
      'grpc.keepalive_time_ms': 300_000,
      'grpc.keepalive_permit_without_calls': 0,
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 1000,
    };
    if (tls === false) {
      // INSECURE_LOCALHOST_ALLOWED only sends the key to `localhost:`; plaintext must send it everywhere.
      this.client = v1.NewClient(presharedKey, endpoint, v1.ClientSecurity.INSECURE_PLAINTEXT_CREDENTIALS, undefined, channelOptions);
    } else if (tls === true) {
      this.client = v1.NewClient(presharedKey, endpoint, v1.ClientSecurity.SECURE, undefined, channelOptions);
    } else {
      const caPath = isAbsolute(tls.caFile) ? tls.caFile : resolve(options.baseDir, tls.caFile);
      this.client = v1.NewClientWithCustomCert(presharedKey, endpoint, readFileSync(caPath), undefined, channelOptions);
    }
  }

  ready(): boolean {
    return this.lastCallReachedServer;
  }

  async check(query: PermissionQuery): Promise<PermissionAnswer> {
    const request = toCheckRequest(query);
    const deadline = Date.now() + this.options.deadlineMs;
    let { answer, retryable } = await this.call(request, deadline);
    if (retryable && Date.now() < deadline - 1) ({ answer } = await this.call(request, deadline));
    this.lastCallReachedServer = !(answer.outcome === 'error' && answer.reason === 'permission_backend_unavailable');
    return answer;
  }

  /** Checks are idempotent, so only UNAVAILABLE (the call never reached SpiceDB's logic) is retried. */
  private call(request: v1.CheckPermissionRequest, deadline: number): Promise<{ answer: PermissionAnswer; retryable: boolean }> {
    return new Promise((resolvePromise) => {
      this.client.checkPermission(request, new Metadata(), { deadline }, (error, response) => {
        if (error || !response) {
          const retryable = isServiceError(error) && error.code === status.UNAVAILABLE;
          resolvePromise({ answer: mapGrpcError(error ?? new Error('empty response')), retryable });
        } else {
          resolvePromise({ answer: answerFor(response.permissionship), retryable: false });
        }
      });
    });
  }

  close(): Promise<void> {
    this.client.close();
    return Promise.resolve();
  }
}
