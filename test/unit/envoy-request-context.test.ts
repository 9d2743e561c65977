import { describe, expect, it } from 'vitest';
import { parseCheckRequest } from '../../src/envoy/request-context-parser.js';
import type { CheckRequest__Output } from '../../src/generated/envoy/service/auth/v3/CheckRequest.js';

const limits = { maxHeaderBytes: 65536 };

function check(http: Record<string, unknown>, extensions: Record<string, string> = { direction: 'inbound' }, principal?: string): CheckRequest__Output {
  return {
    attributes: {
      request: { http },
      context_extensions: extensions,
      ...(principal ? { source: { principal } } : {}),
    },
  } as CheckRequest__Output;
}

function raw(...pairs: [string, string][]) {
  return { headers: pairs.map(([key, value]) => ({ key, raw_value: Buffer.from(value, 'latin1') })) };
}

describe('parseCheckRequest', () => {
  it('builds the typed context from an HTTP request with a header map', () => {
    const result = parseCheckRequest(
      check(
        {
          id: '42',
          method: 'post',
          host: 'API.Example:8443',
          path: '/v1/clouds/cl0/namespaces?dry=1',
          headers: { authorization: 'Bearer abc', 'x-request-id': 'req-1', ':method': 'POST' },
        },
        { direction: 'outbound', audience: 'vmcontroller' },
        'spiffe://cluster.local/ns/cloud/sa/gateway',
      ),
      limits,
    );
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    const r = result.value;
    expect(r.direction).toBe('outbound');
    expect(r.method).toBe('POST');
    expect(r.authority).toBe('api.example:8443');
    expect(r.path).toBe('/v1/clouds/cl0/namespaces');
    expect(r.query).toBe('dry=1');
    expect(r.requestId).toBe('req-1');
    expect(r.grpc).toBeUndefined();
    expect(r.headers.get('authorization')).toBe('Bearer abc');
    expect(r.headers.has(':method')).toBe(false);
    expect(r.peerPrincipal).toBe('spiffe://cluster.local/ns/cloud/sa/gateway');
    expect(r.contextExtensions).toEqual({ direction: 'outbound', audience: 'vmcontroller' });
  });

  it('recognises a gRPC call by content-type and path', () => {
    const result = parseCheckRequest(
      check({
        method: 'POST',
        path: '/authzed.api.v1.PermissionsService/WriteRelationships',
        header_map: raw(['content-type', 'application/grpc+proto'], [':authority', 'spicedb:50051']),
      }),
      limits,
    );
    expect(result.ok && result.value.grpc).toEqual({ service: 'authzed.api.v1.PermissionsService', method: 'WriteRelationships' });
    expect(result.ok && result.value.authority).toBe('spicedb:50051');
  });

  it('does not treat a non-gRPC content type or a deeper path as gRPC', () => {
    const plain = parseCheckRequest(check({ method: 'POST', path: '/a.B/C', headers: { 'content-type': 'application/json' } }), limits);
    const deep = parseCheckRequest(check({ method: 'POST', path: '/a.B/C/D', headers: { 'content-type': 'application/grpc' } }), limits);
    expect(plain.ok && plain.value.grpc).toBeUndefined();
    expect(deep.ok && deep.value.grpc).toBeUndefined();
  });

  it('detects repeated headers in the raw header list', () => {
    const result = parseCheckRequest(
      check({ method: 'GET', path: '/', header_map: raw(['authorization', 'Bearer a'], ['Authorization', 'Bearer b'], ['accept', 'x']) }),
      limits,
    );
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.value.duplicateHeaders.has('authorization')).toBe(true);
    expect(result.value.duplicateHeaders.has('accept')).toBe(false);
    expect(result.value.headers.get('authorization')).toBe('Bearer a,Bearer b');
  });

  it('detects an Authorization header that Envoy joined with a comma', () => {
    const result = parseCheckRequest(check({ method: 'GET', path: '/', headers: { authorization: 'Bearer a,Bearer b' } }), limits);
    expect(result.ok && result.value.duplicateHeaders.has('authorization')).toBe(true);
  });

  it('denies without a direction, or with an unknown one', () => {
    expect(parseCheckRequest(check({ method: 'GET', path: '/' }, {}), limits)).toMatchObject({ ok: false, reason: 'missing_direction' });
    expect(parseCheckRequest(check({ method: 'GET', path: '/' }, { direction: 'sideways' }), limits)).toMatchObject({
      ok: false,
      reason: 'unknown_direction',
    });
  });

  it('denies a request with no HTTP attributes, no path or no method', () => {
    expect(parseCheckRequest({ attributes: { context_extensions: { direction: 'inbound' } } } as CheckRequest__Output, limits)).toMatchObject({ ok: false, reason: 'malformed_request' });
    expect(parseCheckRequest(check({ method: 'GET' }), limits)).toMatchObject({ ok: false, reason: 'malformed_request' });
    expect(parseCheckRequest(check({ path: '/' }), limits)).toMatchObject({ ok: false, reason: 'malformed_request' });
    expect(parseCheckRequest({} as CheckRequest__Output, limits)).toMatchObject({ ok: false, reason: 'missing_direction' });
  });

  it('refuses headers over the size limit instead of truncating them', () => {
    const big = 'x'.repeat(2000);
    const result = parseCheckRequest(check({ method: 'GET', path: '/', headers: { a: big, b: big } }), { maxHeaderBytes: 3000 });
    expect(result).toMatchObject({ ok: false, reason: 'headers_too_large' });
  });

  it('refuses CR, LF and NUL in header values', () => {
    for (const value of ['a\r\nx-jwtauth-subject: admin', 'a\nb', 'a\0b']) {
      const result = parseCheckRequest(check({ method: 'GET', path: '/', header_map: raw(['x-anything', value]) }), limits);
      expect(result).toMatchObject({ ok: false, reason: 'invalid_header_value' });
    }
  });

  it('carries bytes that are not UTF-8 through unchanged instead of throwing', () => {
    const result = parseCheckRequest(
      check({ method: 'GET', path: '/', header_map: { headers: [{ key: 'x-bin', raw_value: Buffer.from([0xff, 0xfe, 0x41]) }] } }),
      limits,
    );
    expect(result.ok && result.value.headers.get('x-bin')).toBe('\u00ff\u00feA');
  });
});
