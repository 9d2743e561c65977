import { describe, expect, it } from 'vitest';
import { allow, deny } from '../../src/core/decision.js';
import { renderCheckResponse } from '../../src/envoy/check-response.js';
import { envoyAuthProto } from '../../src/envoy/protos.js';
import { memoizeResponseSerializer, responseKey } from '../../src/envoy/response-serializer.js';
import type { CheckResponse } from '../../src/generated/envoy/service/auth/v3/CheckResponse.js';

const plain = envoyAuthProto().envoy.service.auth.v3.Authorization.service.Check.responseSerialize;

const identity = (subject: string) =>
  renderCheckResponse(
    allow('allowed', {}, [['x-jwtauth-subject', subject], ['x-jwtauth-subject-type', 'user'], ['x-jwtauth-issuer', 'bench']], ['x-jwtauth-subject', 'x-jwtauth-actor']),
  );

describe('memoized CheckResponse serializer', () => {
  const samples: Array<[string, CheckResponse]> = [
    ['inbound allow', identity('alice')],
    ['another caller', identity('bob')],
    ['outbound allow', renderCheckResponse(allow('service_token_attached', {}, [['authorization', 'Bearer a.b.c']], ['x-jwtauth-on-behalf-of']))],
    ['plain denial', renderCheckResponse(deny('permission_denied'))],
    ['denial with a challenge', renderCheckResponse(deny('missing_token', {}, [['www-authenticate', 'Bearer realm="jwtauth"']]))],
  ];

  it.each(samples)('encodes a %s byte for byte like proto-loader, first and second time', (_name, response) => {
    const memoized = memoizeResponseSerializer(plain);
    expect(memoized(response).equals(plain(response))).toBe(true);
    expect(memoized(structuredClone(response)).equals(plain(response))).toBe(true);
    expect(memoized.size()).toBe(1);
  });

  it('never lets two different responses share bytes', () => {
    const memoized = memoizeResponseSerializer(plain);
    const encoded = samples.map(([, response]) => memoized(response).toString('base64'));
    expect(new Set(encoded).size).toBe(samples.length);
    // A value that would collide under naive concatenation stays distinct with length prefixes.
    const a = renderCheckResponse(allow('allowed', {}, [['x-a', 'b1:c']], []));
    const b = renderCheckResponse(allow('allowed', {}, [['x-a', 'b'], ['1:c', '']], []));
    expect(responseKey(a)).not.toBe(responseKey(b));
  });

  it('encodes fields it does not key on without the memo', () => {
    const memoized = memoizeResponseSerializer(plain);
    const withMetadata: CheckResponse = { ...identity('alice'), dynamic_metadata: { fields: { k: { stringValue: 'v' } } } };
    expect(responseKey(withMetadata)).toBeUndefined();
    expect(memoized(withMetadata).equals(plain(withMetadata))).toBe(true);
    expect(memoized.size()).toBe(0);
  });

  it('stays bounded', () => {
    const memoized = memoizeResponseSerializer(plain, 8);
    for (let i = 0; i < 100; i++) memoized(identity(`user-${i}`));
    expect(memoized.size()).toBeLessThanOrEqual(8);
    expect(memoized(identity('user-99')).equals(plain(identity('user-99')))).toBe(true);
  });
});
