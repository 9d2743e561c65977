/**
 * The raw SpiceDB client: checks go out in CheckBulkPermissions calls (check-batcher.ts decides
 * which leave together), each call with an explicit deadline and retried once on UNAVAILABLE
 * (SpiceDB recycles connections every ~30 s, so a single UNAVAILABLE is routine). No caching,
 * limits or metrics here: those are decorators (see permission-checker.ts).
 *
 * The calls go over the sidecar's own gRPC client on node:http2 (grpc-unary-client.ts), encoded
 * and decoded by bulk-check-codec.ts: grpc-js with protobuf-ts cost most of an uncached check's
 * CPU (docs/benchmarks.md, "Uncached checks"). Everything else asks SpiceDB through
 * @authzed/authzed-node (createSpicedbClient below).
 */
import { readFileSync } from 'node:fs';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { v1 } from '@authzed/authzed-node';
import type { Attributes } from '@opentelemetry/api';
import type { Closable, Consistency, PermissionAnswer, PermissionChecker, PermissionQuery } from '../core/ports.js';
import { failure, thrown } from '../core/result.js';
import { failureForStatus } from './backend-errors.js';
import { decodeBulkCheckResponse, encodeBulkCheckRequest } from './bulk-check-codec.js';
import type { BulkCheckPair } from './bulk-check-codec.js';
import { callSpanAttributes, startCallSpan } from './bulk-check-span.js';
import { PermissionCheckBatcher } from './permission-check-batcher.js';
import type { BatchLimits } from './permission-check-batcher.js';
import { answerFor } from './permission-request.js';
import { GrpcUnaryClient } from './grpc-unary-client.js';
import type { UnaryResult } from './grpc-unary-client.js';
import { activeTrace } from '../observability/tracing.js';
import type { ActiveTrace } from '../observability/tracing.js';
import { resolveConfigPath } from '../base/paths.js';

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

const CHECK_BULK_PERMISSIONS = 'authzed.api.v1.PermissionsService/CheckBulkPermissions';
const CHECK_BULK_PERMISSIONS_PATH = `/${CHECK_BULK_PERMISSIONS}`;

/** Whether SpiceDB's echo of a pair is the check we asked, so no answer is ever misattributed. */
function echoes(pair: BulkCheckPair, query: PermissionQuery): boolean {
  return (
    pair.permission === query.permission &&
    pair.resourceId === query.resource.id &&
    pair.resourceType === query.resource.type &&
    pair.subjectId === query.subject.id &&
    pair.subjectType === query.subject.type &&
    pair.subjectRelation === (query.subject.relation ?? '')
  );
}

function answersFrom(pairs: readonly BulkCheckPair[], queries: readonly PermissionQuery[]): PermissionAnswer[] {
  if (pairs.length !== queries.length) {
    const wrong = failure('permission_backend_unavailable', `SpiceDB answered ${pairs.length} of ${queries.length} checks`);
    return queries.map(() => wrong);
  }
  return queries.map((query, i) => {
    const pair = pairs[i]!;
    if (!echoes(pair, query)) return failure('permission_backend_unavailable', 'SpiceDB answered a different check than asked');
    switch (pair.answer) {
      case 'item':
        return answerFor(pair.permissionship);
      case 'error':
        return failureForStatus(pair.errorCode, pair.errorMessage);
      case 'none':
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
  private readonly client: GrpcUnaryClient;
  /** Each check carries the trace of the Check that asked it (undefined when untraced). */
  private readonly batcher: PermissionCheckBatcher<ActiveTrace>;
  private readonly spanAttributes: Attributes;
  private lastCallReachedServer = true;

  constructor(private readonly options: GrpcCheckerOptions) {
    this.batcher = new PermissionCheckBatcher<ActiveTrace>((queries, consistency, deadline, traces) => this.bulkCheck(queries, consistency, deadline, traces), options.batch);
    const { tls } = options;
    this.client = new GrpcUnaryClient({
      endpoint: options.endpoint,
      // The CA file is read once, here, as createSpicedbClient does: one that cannot be read fails the start.
      tls: tls === false ? false : tls === true ? {} : { ca: readFileSync(resolveConfigPath(options.baseDir, tls.caFile)) },
      headers: { authorization: `Bearer ${options.presharedKey}` },
    });
    this.spanAttributes = callSpanAttributes(CHECK_BULK_PERMISSIONS, options.endpoint);
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
    let request: Uint8Array;
    try {
      request = encodeBulkCheckRequest(queries, consistency);
    } catch (error) {
      // A caveat context with a value JSON has none for: a bug upstream, never an allow.
      const answer = thrown(error, 'encoding CheckBulkPermissions');
      return queries.map(() => answer);
    }
    // Checks are idempotent, so only UNAVAILABLE (the call never reached SpiceDB's logic) is retried.
    let result = await this.call(request, deadline, queries.length, traces);
    if (!result.ok && result.reason === GrpcStatus.UNAVAILABLE && Date.now() < deadline - 1) result = await this.call(request, deadline, queries.length, traces);
    if (!result.ok) {
      const answer = failureForStatus(result.reason, result.detail ?? '');
      this.lastCallReachedServer = answer.reason !== 'permission_backend_unavailable';
      return queries.map(() => answer);
    }
    let pairs: BulkCheckPair[];
    try {
      pairs = decodeBulkCheckResponse(result.value);
    } catch (error) {
      const answer = failure('permission_backend_unavailable', `SpiceDB's CheckBulkPermissions answer does not decode: ${(error as Error).message}`);
      this.lastCallReachedServer = false;
      return queries.map(() => answer);
    }
    this.lastCallReachedServer = true;
    return answersFrom(pairs, queries);
  }

  /** One attempt, in a span of its own when it carries a traced Check's check. */
  private async call(request: Uint8Array, deadline: number, checks: number, traces: readonly (ActiveTrace | undefined)[]): Promise<UnaryResult> {
    const span = startCallSpan(CHECK_BULK_PERMISSIONS, this.spanAttributes, checks, traces);
    const result = await this.client.call(CHECK_BULK_PERMISSIONS_PATH, request, deadline, span?.headers);
    span?.end(result.ok ? GrpcStatus.OK : result.reason);
    return result;
  }

  close(): Promise<void> {
    this.client.close();
    return Promise.resolve();
  }
}
