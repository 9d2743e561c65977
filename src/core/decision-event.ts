/**
 * One answered Check, as the Envoy adapter reports it and the decision log, metrics and the
 * `check` command read it. Its own module so neither side imports the other.
 */
import type { Decision } from './decision.js';
import type { Direction, RequestContext } from './request-context.js';

export interface DecisionEvent {
  /** Undefined when the request could not be parsed. */
  readonly request: RequestContext | undefined;
  readonly direction: Direction | 'unknown';
  readonly decision: Decision;
  /**
   * Names this answer in the `x-jwtauth-decision-id` header, the decision log and traces: the
   * Check span's trace id when tracing is on, 32 random hex characters otherwise.
   */
  readonly decisionId: string;
  readonly seconds: number;
}

export type DecisionObserver = (event: DecisionEvent) => void;
