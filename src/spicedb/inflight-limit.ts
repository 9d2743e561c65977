/**
 * Decorator: a hard bound on SpiceDB calls in flight. Past it, checks fail at once with
 * permission_backend_overloaded (503, retryable) instead of queueing without limit behind a slow
 * SpiceDB, which would turn a slowdown into timeouts for everyone and unbounded memory.
 */
import type { Closable, PermissionAnswer, PermissionChecker, PermissionQuery } from '../core/ports.js';
import type { Metrics } from '../observability/metrics.js';
import { failure } from '../core/result.js';

const OVERLOADED: PermissionAnswer = Object.freeze(failure('permission_backend_overloaded', 'maxInflight reached'));

export class InflightLimit implements PermissionChecker, Closable {
  private inflight = 0;

  constructor(
    private readonly inner: PermissionChecker & Closable,
    private readonly maxInflight: number,
    private readonly metrics: Metrics,
  ) {}

  ready(): boolean {
    return this.inner.ready();
  }

  check(query: PermissionQuery): Promise<PermissionAnswer> {
    if (this.inflight >= this.maxInflight) return Promise.resolve(OVERLOADED);
    this.inflight++;
    this.metrics.spicedbInflightChecks.set(this.inflight);
    return Promise.resolve(this.inner.check(query)).finally(() => {
      this.inflight--;
      this.metrics.spicedbInflightChecks.set(this.inflight);
    });
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
