/**
 * The memoized CheckResponse serializer with decision ids: the id changes on every answer, so a
 * response is memoized with a placeholder where its id goes and each answer writes its own id
 * over it. The bytes must decode exactly as the plain encoder's, and the memo must not grow per id.
 */
import { describe, expect, it } from 'vitest';
import { allow, deny } from '../../src/core/decision.js';
import { DECISION_ID_HEADER, renderCheckResponse } from '../../src/envoy/check-response.js';
import { envoyAuthProto } from '../../src/envoy/protos.js';
import { memoizeResponseSerializer } from '../../src/envoy/response-serializer.js';
import { newDecisionId } from '../../src/observability/tracing-ids.js';

const { responseSerialize: plain, responseDeserialize: decode } = envoyAuthProto().envoy.service.auth.v3.Authorization.service.Check;

const identity = allow('allowed', {}, [['x-jwtauth-subject', 'alice'], ['x-jwtauth-issuer', 'corp']], ['x-jwtauth-subject', 'x-jwtauth-actor']);
const decisions = [
  ['inbound allow', identity],
  ['allow without headers', allow('public_route')],
  ['plain denial', deny('permission_denied')],
  ['denial with a challenge', deny('missing_token', {}, [['www-authenticate', 'Bearer realm="jwtauth"']])],
] as const;

describe('decision ids through the memoized serializer', () => {
  it.each(decisions)('a %s decodes as if encoded in one piece, and the memo holds one entry for many ids', (_name, decision) => {
    const memoized = memoizeResponseSerializer(plain);
    for (let i = 0; i < 20; i++) {
      const response = renderCheckResponse(decision, newDecisionId());
      expect(decode(memoized(response))).toEqual(decode(plain(response)));
    }
    expect(memoized.size()).toBe(1);
  });

  it('puts the id last and leaves the memoized bytes of other answers untouched', () => {
    const memoized = memoizeResponseSerializer(plain);
    const id = newDecisionId();
    const decoded = decode(memoized(renderCheckResponse(identity, id)));
    expect(decoded.ok_response?.headers?.at(-1)?.header).toMatchObject({ key: DECISION_ID_HEADER, value: id });
    const again = decode(memoized(renderCheckResponse(identity, newDecisionId())));
    expect(again.ok_response?.headers?.filter((option) => option.header?.key === DECISION_ID_HEADER)).toHaveLength(1);
    expect(memoized(renderCheckResponse(identity)).equals(plain(renderCheckResponse(identity)))).toBe(true);
  });
});
