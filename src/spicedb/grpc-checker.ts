/**
 * The raw SpiceDB client: checks go out in CheckBulkPermissions calls (check-batcher.ts decides
 * which leave together), each call with an explicit deadline and retried once on UNAVAILABLE
 * (SpiceDB recycles connections every ~30 s, so a single UNAVAILABLE is routine). No caching,
 * limits or metrics here: those are decorators (see permission-checker.ts).
 */
import { readFileSync } from 'node:fs';
import { Metadata, status } from '@grpc/grpc-js';
import type { CallOptions, ServiceError } from '@grpc/grpc-js';
import { v1 } from '@authzed/authzed-node';
import type { Closable, Consistency, PermissionAnswer, PermissionChecker, PermissionQuery } from '../core/ports.js';
import { failure } from '../core/result.js';
import type { Failure } from '../core/result.js';
import { failureForStatus } from './backend-errors.js';
import { CheckBatcher } from './check-batcher.js';
import type { BatchLimits } from './check-batcher.js';
import { answerFor, consistencyMessage, toBulkItem } from './check-request.js';
import { spicedbCallOptions } from './tracing-interceptor.js';
import { activeTrace } from '../observability/tracing.js';
import type { ActiveTrace } from '../observability/tracing.js';
import { resolveConfigPath } from '../config/paths.js';

export interface GrpcCheckerOptions {
  readonly endpoint: string;
  readonly presharedKey: string;
  readonly tls: boolean | { readonly caFile: string };
  readonly deadlineMs: number;
  readonly baseDir: string;
  readonly batch: BatchLimits;
  /** Called with the number of checks in each call sent. */
  readonly onCall?: (checks: number) => void;
}

function isServiceError(error: unknown): error is ServiceError {
  return error instanceof Error && typeof (error as Partial<ServiceError>).code === 'number';
}

function callFailure(error: unknown): Failure {
  if (!isServiceError(error)) return failure('permission_backend_unavailable', error instanceof Error ? error.message : 'unknown error');
  return failureForStatus(error.code, error.details);
}

/** Whether SpiceDB's echo of an item is the check we asked, so no answer is ever misattributed. */
function echoes(item: v1.CheckBulkPermissionsRequestItem | undefined, query: PermissionQuery): boolean {
  return (
    item !== undefined &&
    item.permission === query.permission &&
    item.resource?.objectId === query.resource.id &&
    item.resource.objectType === query.resource.type &&
    item.subject?.object?.objectId === query.subject.id &&
    item.subject.object.objectType === query.subject.type
  );
}

function answersFrom(response: v1.CheckBulkPermissionsResponse, queries: readonly PermissionQuery[]): PermissionAnswer[] {
  if (response.pairs.length !== queries.length) {
    const wrong = failure('permission_backend_unavailable', `SpiceDB answered ${response.pairs.length} of ${queries.length} checks`);
    return queries.map(() => wrong);
  }
  return queries.map((query, i) => {
    const pair = response.pairs[i]!;
    if (!echoes(pair.request, query)) return failure('permission_backend_unavailable', 'SpiceDB answered a different check than asked');
    switch (pair.response.oneofKind) {
      case 'item':
        return answerFor(pair.response.item.permissionship);
      case 'error':
        return failureForStatus(pair.response.error.code, pair.response.error.message);
      default:
        return failure('permission_backend_unavailable', 'SpiceDB answered a check with neither a result nor an error');
    }
  });
}

/** Where SpiceDB is and how to reach it: shared by the checker and the schema reader (server-schema.ts). */
export interface SpicedbClientOptions {
  readonly endpoint: string;
  readonly presharedKey: string;
  readonly tls: boolean | { readonly caFile: string };
  readonly baseDir: string;
}

/** A SpiceDB client with the sidecar's TLS, preshared-key and channel settings. */
export function createSpicedbClient(options: SpicedbClientOptions): v1.ZedClientInterface {
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
    return v1.NewClient(presharedKey, endpoint, v1.ClientSecurity.INSECURE_PLAINTEXT_CREDENTIALS, undefined, channelOptions);
  }
  if (tls === true) return v1.NewClient(presharedKey, endpoint, v1.ClientSecurity.SECURE, undefined, channelOptions);
  const caPath = resolveConfigPath(options.baseDir, tls.caFile);
  return v1.NewClientWithCustomCert(presharedKey, endpoint, readFileSync(caPath), undefined, channelOptions);
}

export class GrpcChecker implements PermissionChecker, Closable {
  private readonly client: v1.ZedClientInterface;
  /** Each check carries the trace of the Check that asked it (undefined when untraced). */
  private readonly batcher: CheckBatcher<ActiveTrace>;
  private lastCallReachedServer = true;

  constructor(private readonly options: GrpcCheckerOptions) {
    this.batcher = new CheckBatcher<ActiveTrace>((queries, consistency, deadline, traces) => this.bulkCheck(queries, consistency, deadline, traces), options.batch);
    this.client = createSpicedbClient(options);
  }

  ready(): boolean {
    return this.lastCallReachedServer;
  }

  check(query: PermissionQuery): Promise<PermissionAnswer> {
    return this.batcher.check(query, Date.now() + this.options.deadlineMs, activeTrace());
  }

  private async bulkCheck(
    queries: readonly PermissionQuery[],
    consistency: Consistency,
    deadline: number,
    traces: readonly (ActiveTrace | undefined)[],
  ): Promise<readonly PermissionAnswer[]> {
    this.options.onCall?.(queries.length);
    const request = v1.CheckBulkPermissionsRequest.create({ consistency: consistencyMessage(consistency), items: queries.map(toBulkItem) });
    const callOptions = (): CallOptions => spicedbCallOptions(deadline, this.options.endpoint, traces);
    let outcome = await this.call(request, callOptions());
    if (outcome.retryable && Date.now() < deadline - 1) outcome = await this.call(request, callOptions());
    this.lastCallReachedServer = outcome.reachedServer;
    if ('error' in outcome) return queries.map(() => outcome.error);
    return answersFrom(outcome.response, queries);
  }

  /** Checks are idempotent, so only UNAVAILABLE (the call never reached SpiceDB's logic) is retried. */
  private call(
    request: v1.CheckBulkPermissionsRequest,
    callOptions: CallOptions,
  ): Promise<{ response: v1.CheckBulkPermissionsResponse; reachedServer: true; retryable: false } | { error: Failure; reachedServer: boolean; retryable: boolean }> {
    return new Promise((resolvePromise) => {
      this.client.checkBulkPermissions(request, new Metadata(), callOptions, (error, response) => {
        if (response && !error) {
          resolvePromise({ response, reachedServer: true, retryable: false });
          return;
        }
        const answer = callFailure(error ?? new Error('empty response'));
        const unavailable = isServiceError(error) && error.code === status.UNAVAILABLE;
        resolvePromise({ error: answer, reachedServer: answer.reason !== 'permission_backend_unavailable', retryable: unavailable });
      });
    });
  }

  close(): Promise<void> {
    this.client.close();
    return Promise.resolve();
  }
}
