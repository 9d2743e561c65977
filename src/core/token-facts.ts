import type { DecisionFacts } from './decision.js';
import type { VerifiedToken } from './ports.js';

/** The decision facts a verified token contributes, for both directions. */
export function tokenFacts(token: VerifiedToken): DecisionFacts {
  return { subject: token.subject, subjectType: token.subjectType, issuer: token.issuer, tokenKind: token.issuerKind };
}
