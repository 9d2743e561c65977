import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { allow, deny, DENY_REASONS } from '../../src/core/decision.js';
import { REASON_HEADER, renderCheckResponse } from '../../src/envoy/check-response.js';

describe('renderCheckResponse', () => {
  it('renders an allow with overwrite semantics on every header and the removals', () => {
    const response = renderCheckResponse(
      allow('allowed', {}, [['x-jwtauth-subject', 'alice'], ['authorization', 'Bearer t']], ['x-jwtauth-actor', 'x-jwtauth-on-behalf-of']),
    );
    expect(response.status).toEqual({ code: status.OK });
    expect(response.denied_response).toBeUndefined();
    expect(response.ok_response?.headers).toEqual([
      { header: { key: 'x-jwtauth-subject', value: 'alice' }, append: { value: false } },
      { header: { key: 'authorization', value: 'Bearer t' }, append: { value: false } },
    ]);
    expect(response.ok_response?.headers_to_remove).toEqual(['x-jwtauth-actor', 'x-jwtauth-on-behalf-of']);
  });

  it('never asks Envoy to remove a header it sets, since Envoy removes after setting', () => {
    const response = renderCheckResponse(
      allow('allowed', {}, [['x-jwtauth-subject', 'alice']], ['x-jwtauth-subject', 'x-jwtauth-subject-type', 'x-jwtauth-actor']),
    );
    expect(response.ok_response?.headers_to_remove).toEqual(['x-jwtauth-subject-type', 'x-jwtauth-actor']);
    expect(response.ok_response?.headers).toEqual([{ header: { key: 'x-jwtauth-subject', value: 'alice' }, append: { value: false } }]);
  });

  it.each([
    ['missing_token', 401, status.UNAUTHENTICATED],
    ['permission_denied', 403, status.PERMISSION_DENIED],
    ['permission_backend_unavailable', 503, status.UNAVAILABLE],
    ['malformed_request', 400, status.INVALID_ARGUMENT],
    ['headers_too_large', 431, status.INVALID_ARGUMENT],
  ] as const)('renders a %s denial as HTTP %i with the reason header and a short body', (reason, http, grpcCode) => {
    const response = renderCheckResponse(deny(reason));
    expect(response.status?.code).toBe(grpcCode);
    expect(response.ok_response).toBeUndefined();
    expect(response.denied_response?.status).toEqual({ code: http });
    expect(response.denied_response?.headers).toContainEqual({ header: { key: REASON_HEADER, value: reason }, append: { value: false } });
    expect(response.denied_response?.body).toBe(`${reason}: ${DENY_REASONS[reason].text}`);
    expect(response.denied_response?.body?.length).toBeLessThan(80);
  });

  it('adds a denial’s own headers, such as WWW-Authenticate', () => {
    const response = renderCheckResponse(deny('bad_signature', {}, [['www-authenticate', 'Bearer realm="jwtauth", error="invalid_token"']]));
    expect(response.denied_response?.headers).toContainEqual({
      header: { key: 'www-authenticate', value: 'Bearer realm="jwtauth", error="invalid_token"' },
      append: { value: false },
    });
  });

  it('never puts operator detail in the response', () => {
    const response = renderCheckResponse(deny('permission_backend_unavailable', { detail: 'connect ECONNREFUSED 10.0.0.7:50051' }));
    expect(JSON.stringify(response)).not.toContain('ECONNREFUSED');
  });
});
