/**
 * Dry-run, as a decorator around any authorizer: the decision is computed, logged and counted as
 * usual, but a denial is turned into an allow that remembers what it would have been. Used to roll
 * the sidecar out in front of live traffic. The headers the inner authorizer strips are still
 * stripped: dry-run must not let a forged identity reach the app.
 */
import { allow } from './decision.js';
import type { Decision } from './decision.js';
import { andThen } from './awaitable.js';
import type { Awaitable } from './awaitable.js';
import type { Authorizer } from './ports.js';
import type { RequestContext } from './request-context.js';

export class DryRunAuthorizer implements Authorizer {
  readonly strippedHeaders: readonly string[];

  constructor(
    private readonly inner: Authorizer,
    /** Global dry-run; per-rule dry-run arrives as `facts.dryRun` on the inner decision. */
    private readonly global: boolean,
  ) {
    this.strippedHeaders = inner.strippedHeaders;
  }

  decide(request: RequestContext): Awaitable<Decision> {
    return andThen(this.inner.decide(request), (decision) => {
      if (decision.kind === 'allow' || !(this.global || decision.facts.dryRun)) return decision;
      return allow('dry_run', { ...decision.facts, dryRun: true, wouldDeny: decision.reason }, [], this.strippedHeaders);
    });
  }
}
