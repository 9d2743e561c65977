/**
 * Sends permission checks to SpiceDB in CheckBulkPermissions calls, without waiting to fill them.
 *
 * A check goes out at the next turn of the event loop if fewer than `maxConcurrentCalls` calls are
 * in flight; otherwise it waits for one of them to finish and leaves with everything else that
 * queued meanwhile (up to `maxItems`, same consistency). So a quiet sidecar sends each check on
 * its own at once, and a busy one sends fewer, fuller calls: the HTTP/2 stream per call is the
 * cost, so a call of many checks costs each a fraction of one sent alone (docs/benchmarks.md).
 *
 * Each check keeps its own deadline: one that passes while queued is answered
 * permission_backend_timeout without being sent, and a call's deadline is its earliest item's, so
 * no check ever waits past its own (a later one in the same call may end a little early; the
 * spread is at most one call's wait in the queue).
 *
 * Each check may carry an `origin` the batcher only hands on: the caller's trace, so the call's
 * span can link every Check whose check it carried (bulk-check-span.ts).
 */
import type { Consistency, PermissionAnswer, PermissionQuery } from '../core/ports.js';
import { failure, thrown } from '../core/result.js';

/** One CheckBulkPermissions call: an answer per query, in order; never rejects. `origins[i]` came with `queries[i]`. */
export type BulkCheck<Origin> = (
  queries: readonly PermissionQuery[],
  consistency: Consistency,
  deadline: number,
  origins: readonly (Origin | undefined)[],
) => Promise<readonly PermissionAnswer[]>;

export interface BatchLimits {
  readonly maxItems: number;
  readonly maxConcurrentCalls: number;
}

interface Pending<Origin> {
  readonly query: PermissionQuery;
  readonly deadline: number;
  readonly origin: Origin | undefined;
  readonly resolve: (answer: PermissionAnswer) => void;
}

const EXPIRED_IN_QUEUE: PermissionAnswer = Object.freeze(failure('permission_backend_timeout', 'deadline passed while waiting for a SpiceDB call slot'));

function sameConsistency(a: Consistency, b: Consistency): boolean {
  if (a.kind !== b.kind) return false;
  return a.kind !== 'at_least_as_fresh' || a.zedToken === (b as typeof a).zedToken;
}

export class PermissionCheckBatcher<Origin = never> {
  private queue: Pending<Origin>[] = [];
  private callsInFlight = 0;
  private flushScheduled = false;

  constructor(
    private readonly bulkCheck: BulkCheck<Origin>,
    private readonly limits: BatchLimits,
    private readonly now: () => number = Date.now,
  ) {}

  check(query: PermissionQuery, deadline: number, origin?: Origin): Promise<PermissionAnswer> {
    return new Promise((resolve) => {
      this.queue.push({ query, deadline, origin, resolve });
      if (!this.flushScheduled && this.callsInFlight < this.limits.maxConcurrentCalls) {
        this.flushScheduled = true;
        // After this turn's I/O, so checks decoded from the same read leave together.
        setImmediate(() => {
          this.flushScheduled = false;
          this.flush();
        });
      }
    });
  }

  private flush(): void {
    while (this.callsInFlight < this.limits.maxConcurrentCalls) {
      const batch = this.takeBatch();
      if (batch === undefined) return;
      this.callsInFlight++;
      void this.send(batch).finally(() => {
        this.callsInFlight--;
        this.flush();
      });
    }
  }

  /** The oldest live check and up to maxItems - 1 later ones with the same consistency. */
  private takeBatch(): Pending<Origin>[] | undefined {
    const now = this.now();
    const batch: Pending<Origin>[] = [];
    const rest: Pending<Origin>[] = [];
    for (const pending of this.queue) {
      if (pending.deadline <= now) pending.resolve(EXPIRED_IN_QUEUE);
      else if (batch.length < this.limits.maxItems && (batch.length === 0 || sameConsistency(batch[0]!.query.consistency, pending.query.consistency))) {
        batch.push(pending);
      } else rest.push(pending);
    }
    this.queue = rest;
    return batch.length > 0 ? batch : undefined;
  }

  private async send(batch: readonly Pending<Origin>[]): Promise<void> {
    let deadline = Number.POSITIVE_INFINITY;
    for (const pending of batch) deadline = Math.min(deadline, pending.deadline);
    let answers: readonly PermissionAnswer[];
    try {
      answers = await this.bulkCheck(
        batch.map((pending) => pending.query),
        batch[0]!.query.consistency,
        deadline,
        batch.map((pending) => pending.origin),
      );
    } catch (error) {
      // BulkCheck maps every failure to answers; this is a bug, and still never an allow.
      const answer = thrown(error, 'SpiceDB bulk check');
      batch.forEach((pending) => pending.resolve(answer));
      return;
    }
    batch.forEach((pending, i) => pending.resolve(answers[i] ?? failure('permission_backend_unavailable', 'SpiceDB answered fewer checks than asked')));
  }
}
