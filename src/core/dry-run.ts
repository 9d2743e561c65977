/**
 * Dry-run, as a decorator around any authorizer: the decision is computed, logged and counted as
 * usual, but a denial is turned into an allow that remembers what it would have been. Used to roll
 * the sidecar out in front of live traffic. Identity headers are still stripped: dry-run must not
 * let a forged identity reach the app.
 */
import { allow } from './decision.js';
import type { Decision } from './decision.js';
import { IDENTITY_HEADER_NAMES } from './identity-headers.js';
import type { Authorizer } from './ports.js';
import type { RequestContext } from './request-context.js';

export function toDryRunAllow(decision: Decision, stripHeaders: readonly string[]): Decision {
  if (decision.kind === 'allow') return decision;
  return allow('dry_run', { ...decision.facts, dryRun: true, wouldDeny: decision.reason }, [], stripHeaders);
}

export class DryRunAuthorizer implements Authorizer {
  constructor(
    private readonly inner: Authorizer,
    /** Global dry-run; per-rule dry-run arrives as `facts.dryRun` on the inner decision. */
    private readonly global: boolean,
    private readonly stripHeaders: readonly string[] = IDENTITY_HEADER_NAMES,
  ) {}

  async decide(request: RequestContext): Promise<Decision> {
    const decision = await this.inner.decide(request);
    if (decision.kind === 'deny' && (this.global || decision.facts.dryRun)) return toDryRunAllow(decision, this.stripHeaders);
    return decision;
  }
}
