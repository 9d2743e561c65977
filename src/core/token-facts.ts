import type { DecisionFacts } from './decision.js';
import type { VerifiedToken } from './ports.js';

/** A verified token is the same object on every hit of the verifier's cache: its facts are made once. */
const factsOf = new WeakMap<VerifiedToken, DecisionFacts>();

/** The decision facts a verified token contributes, for both directions. */
export function tokenFacts(token: VerifiedToken): DecisionFacts {
  let facts = factsOf.get(token);
  if (facts === undefined) {
    facts = Object.freeze({ subject: token.subject, subjectType: token.subjectType, issuer: token.issuer, tokenKind: token.issuerKind });
    factsOf.set(token, facts);
  }
  return facts;
}
