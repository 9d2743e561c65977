/**
 * Decision ids when tracing is off: 16 random bytes as 32 lower-case hex characters, the shape of
 * a W3C trace id, so a decision id reads the same whether or not tracing made it. The bytes come
 * from a pool refilled 4096 ids at a time: one getrandom() per 4096 Checks instead of one per
 * Check, which measured an order of magnitude cheaper per id.
 * Unguessable, unlike a counter, so an id seen in one answer says nothing about another's.
 */
import { randomFillSync } from 'node:crypto';

const ID_BYTES = 16;
const POOL_BYTES = ID_BYTES * 4096;
/** Trace ids and decision ids are 32 lower-case hex characters. */
export const DECISION_ID_LENGTH = ID_BYTES * 2;

const pool = Buffer.allocUnsafe(POOL_BYTES);
let offset = POOL_BYTES;

export function newDecisionId(): string {
  if (offset === POOL_BYTES) {
    randomFillSync(pool);
    offset = 0;
  }
  const id = pool.toString('hex', offset, offset + ID_BYTES);
  offset += ID_BYTES;
  return id;
}
