/** Decorator: counts and times every call that actually reaches SpiceDB (retries included). */
import type { PermissionAnswer, PermissionQuery } from '../core/ports.js';
import type { Metrics } from '../observability/metrics.js';
import type { ClosableChecker } from './closable-checker.js';

export class MeteredChecker implements ClosableChecker {
  constructor(
    private readonly inner: ClosableChecker,
    private readonly metrics: Metrics,
  ) {}

  ready(): boolean {
    return this.inner.ready();
  }

  async check(query: PermissionQuery): Promise<PermissionAnswer> {
    const started = performance.now();
    const answer = await this.inner.check(query);
    this.metrics.spicedbCheckDuration.observe((performance.now() - started) / 1000);
    this.metrics.spicedbChecks.inc({ result: answer.outcome === 'error' ? answer.reason : answer.outcome });
    return answer;
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
