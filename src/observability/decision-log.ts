/**
 * One JSON line per decision, and the counters and histograms that go with it. Denies are always
 * logged; allows are sampled. The line holds who, what and why, never a token: `facts` is built
 * by the decision core from verified claims only.
 */
import type { Decision } from '../core/decision.js';
import type { DecisionEvent, DecisionObserver } from '../core/decision-event.js';
import type { CounterCell } from './counter-cells.js';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';

export interface DecisionLogOptions {
  readonly allowSampleRate: number;
  readonly random?: () => number;
}

export function createDecisionObserver(metrics: Metrics, logger: Logger, options: () => DecisionLogOptions): DecisionObserver {
  // One counter cell per (direction, reason), found without building a key (the reason implies the decision).
  const cells = new Map<string, Map<string, CounterCell<'direction' | 'decision' | 'reason'>>>();
  const checkCell = (direction: string, decision: Decision): CounterCell<'direction' | 'decision' | 'reason'> => {
    let byReason = cells.get(direction);
    if (byReason === undefined) cells.set(direction, (byReason = new Map()));
    let cell = byReason.get(decision.reason);
    if (cell === undefined) byReason.set(decision.reason, (cell = metrics.checkCells.cell({ direction, decision: decision.kind, reason: decision.reason })));
    return cell;
  };
  return (event: DecisionEvent) => {
    const { decision, decisionId, request, direction, seconds } = event;
    checkCell(direction, decision).inc();
    metrics.checkDuration.observe({ direction, decision: decision.kind }, seconds);
    if (decision.kind === 'allow') {
      if (decision.facts.wouldDeny) metrics.dryRunDenials.inc({ direction, reason: decision.facts.wouldDeny });
      const { allowSampleRate, random = Math.random } = options();
      if (allowSampleRate < 1 && random() >= allowSampleRate) return;
    }
    // Below `info` (log.level warn or quieter) the line is never written: do not build it either.
    if (!logger.isLevelEnabled('info')) return;
    const facts = decision.facts;
    logger.info(
      {
        decisionId,
        requestId: request?.requestId,
        direction,
        method: request?.grpc ? `${request.grpc.service}/${request.grpc.method}` : request?.method,
        path: request?.grpc ? undefined : request?.path,
        authority: request?.authority,
        rule: facts.rule,
        subject: facts.subject,
        subjectType: facts.subjectType,
        issuer: facts.issuer,
        audience: facts.audience,
        tokenKind: facts.tokenKind,
        checks: facts.checks,
        body: facts.body,
        decision: decision.kind,
        reason: decision.reason,
        status: decision.kind === 'deny' ? decision.status : 200,
        detail: facts.detail,
        wouldDeny: facts.wouldDeny,
        latencyMs: Math.round(seconds * 1e6) / 1e3,
      },
      'decision',
    );
  };
}
