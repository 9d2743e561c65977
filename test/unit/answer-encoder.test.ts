/**
 * The answer encoder memoizes each distinct answer's bytes with a placeholder where the decision
 * id goes. Whatever the decision, what it writes must decode exactly as the plain encoder's
 * (render the CheckResponse, encode it whole), with this Check's id and no other.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ALLOW_REASONS, allow, DENY_REASONS, deny } from '../../src/core/decision.js';
import type { AllowReason, Decision, DenyReason } from '../../src/core/decision.js';
import { AnswerEncoder, frameCheckResponse } from '../../src/envoy/answer-encoder.js';
import { DECISION_ID_HEADER, renderCheckResponse } from '../../src/envoy/check-response.js';
import { newDecisionId } from '../../src/observability/tracing-ids.js';
import { decodeFramedResponse } from '../support/framed-response.js';

const plain = (decision: Decision, id: string, grpc = false): Buffer => frameCheckResponse(renderCheckResponse(decision, id, grpc));
const hexId = fc.uint8Array({ minLength: 16, maxLength: 16 }).map((bytes) => Buffer.from(bytes).toString('hex'));
const headerName = fc.constantFrom('x-jwtauth-subject', 'x-jwtauth-issuer', 'authorization', 'www-authenticate', DECISION_ID_HEADER, 'x-a', '1:c');
// Values that could confuse a key made of joined strings, and the placeholder itself.
const headerValue = fc.oneof(fc.string(), fc.constantFrom('', ':', '|', '#1', 'q'.repeat(32), 'x-jwtauth-subject'));
const headers = fc.array(fc.tuple(headerName, headerValue), { maxLength: 5 });
const decision: fc.Arbitrary<Decision> = fc.oneof(
  fc.tuple(fc.constantFrom(...ALLOW_REASONS), headers, fc.array(headerName, { maxLength: 6 })).map(([reason, set, removed]) => allow(reason as AllowReason, {}, set, removed)),
  fc.tuple(fc.constantFrom(...(Object.keys(DENY_REASONS) as DenyReason[])), headers).map(([reason, extra]) => deny(reason, {}, extra)),
);

describe('the answer encoder', () => {
  it('writes, for any decision, id and kind of call, the bytes that decode as the plain encoder\'s', () => {
    const encoder = new AnswerEncoder();
    fc.assert(
      fc.property(fc.array(fc.tuple(decision, hexId, fc.boolean()), { minLength: 1, maxLength: 8 }), (answers) => {
        // Each decision answered twice with different ids: the second comes from the memo.
        for (const [each, id, grpc] of [...answers, ...answers.map(([d, , g]) => [d, newDecisionId(), g] as const)]) {
          expect(decodeFramedResponse(encoder.encode(each, id, grpc))).toEqual(decodeFramedResponse(plain(each, id, grpc)));
        }
      }),
      { numRuns: 300 },
    );
  });

  it('holds one entry for an answer whatever its ids, and never writes into the bytes it keeps', () => {
    const encoder = new AnswerEncoder();
    const identity = allow('allowed', {}, [['x-jwtauth-subject', 'alice']], ['x-jwtauth-subject', 'x-jwtauth-actor']);
    const first = newDecisionId();
    const firstAnswer = encoder.encode(identity, first);
    for (let i = 0; i < 50; i++) encoder.encode(identity, newDecisionId());
    expect(encoder.size).toBe(1);
    const decoded = decodeFramedResponse(firstAnswer);
    expect(decoded.ok_response?.headers?.filter((option) => option.header?.key === DECISION_ID_HEADER).map((option) => option.header?.value)).toEqual([first]);
  });

  it('gives a denied gRPC call its gRPC status, and an HTTP request none', () => {
    const encoder = new AnswerEncoder();
    const statusOf = (framed: Buffer) => decodeFramedResponse(framed).denied_response?.headers?.find((option) => option.header?.key === 'grpc-status')?.header?.value;
    for (const [reason, code] of [['missing_token', '16'], ['permission_denied', '7'], ['body_malformed', '3'], ['body_too_large', '8'], ['body_unsupported_encoding', '3'], ['permission_backend_unavailable', '14'], ['internal_error', '13']] as const) {
      expect(statusOf(encoder.encode(deny(reason), newDecisionId(), true)), reason).toBe(code);
      expect(statusOf(encoder.encode(deny(reason), newDecisionId(), false)), reason).toBeUndefined();
    }
  });

  it('tells apart answers whose strings join alike', () => {
    const encoder = new AnswerEncoder();
    const a = allow('allowed', {}, [['x-a', 'b1:c']], []);
    const b = allow('allowed', {}, [['x-a', 'b'], ['1:c', '']], []);
    const id = newDecisionId();
    expect(decodeFramedResponse(encoder.encode(a, id))).toEqual(decodeFramedResponse(plain(a, id)));
    expect(decodeFramedResponse(encoder.encode(b, id))).toEqual(decodeFramedResponse(plain(b, id)));
    expect(encoder.size).toBe(2);
  });

  it('stays within its bound: past it the memo starts over and still answers right', () => {
    const encoder = new AnswerEncoder(8);
    for (let i = 0; i < 100; i++) {
      const each = allow('allowed', {}, [['x-jwtauth-subject', `user-${i}`]], []);
      const id = newDecisionId();
      expect(decodeFramedResponse(encoder.encode(each, id))).toEqual(decodeFramedResponse(plain(each, id)));
      expect(encoder.size).toBeLessThanOrEqual(8);
    }
  });
});
