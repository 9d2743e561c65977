/**
 * Decorator: a span for the rule lookup of each Check, a child of the Check's span, naming the
 * rule that matched (or none). Installed only when tracing is on (lifecycle/runtime.ts); the lookup itself is
 * synchronous and allocation-free, so this span is the only cost it adds.
 */
import { SpanKind } from '@opentelemetry/api';
import type { RequestContext } from '../core/request-context.js';
import { inChildSpanSync } from './tracing.js';
import type { RuleMatch, RuleMatcher } from '../inbound/rule-index.js';

export class TracingRuleMatcher implements RuleMatcher {
  constructor(private readonly inner: RuleMatcher) {}

  match(request: RequestContext): RuleMatch | undefined {
    return inChildSpanSync('jwtauth.match_rule', SpanKind.INTERNAL, (span) => {
      const found = this.inner.match(request);
      span.setAttributes({ 'jwtauth.rule.matched': found !== undefined, ...(found ? { 'jwtauth.rule': found.rule.name } : {}) });
      return found;
    });
  }
}
