/** Decorator: counts and times every call that actually reaches SpiceDB (retries included). */
import type { Closable, PermissionAnswer, PermissionChecker, PermissionQuery } from '../core/ports.js';
import type { Metrics } from '../observability/metrics.js';

export class MeteredChecker implements PermissionChecker, Closable {
  constructor(
    private readonly inner: PermissionChecker & Closable,
    private readonly metrics: Metrics,
  ) {}

  ready(): boolean {
    return this.inner.ready();
  }

  async check(query: PermissionQuery): Promise<PermissionAnswer> {
    const started = performance.now();
    const answer = await this.inner.check(query);
    this.metrics.spicedbCheckDuration.observe((performance.now() - started) / 1000);
    this.metrics.spicedbChecks.inc({ result: answer.ok ? answer.value.permissionship : answer.reason });
    return answer;
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
