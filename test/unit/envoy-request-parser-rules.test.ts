/**
 * What the decision core is handed for a CheckRequest: the rules the request-context parser keeps
 * about limits, where each request attribute comes from, and the body's framing facts.
 */
import { describe, expect, it } from 'vitest';
import { parseCheckRequest } from '../../src/envoy/request-context-parser.js';
import type { CheckRequestView } from '../../src/envoy/check-request-decoder.js';
import type { RequestContext } from '../../src/core/request-context.js';

const limits = { maxHeaderBytes: 65_536 };

function check(http: Record<string, unknown>, principal?: string): CheckRequestView {
  return {
    attributes: {
      request: { http },
      context_extensions: { direction: 'inbound' },
      ...(principal === undefined ? {} : { source: { principal } }),
    },
  } as CheckRequestView;
}

function parsed(http: Record<string, unknown>, principal?: string): RequestContext {
  const result = parseCheckRequest(check(http, principal), limits);
  if (!result.ok) throw new Error(`refused: ${result.reason} ${result.detail}`);
  return result.value;
}

const entries = (...pairs: [string, string][]) => ({ headers: pairs.map(([key, value]) => ({ key, raw_value: Buffer.from(value, 'latin1') })) });

describe('header limits', () => {
  it('takes headers whose names and values add up to exactly the limit, and refuses one byte more', () => {
    // Names count as sent lower-cased; pseudo-headers count too.
    const headers = entries([':path', '/x'], ['X-A', 'yy']);
    const size = ':path'.length + '/x'.length + 'x-a'.length + 'yy'.length;
    expect(parseCheckRequest(check({ method: 'GET', header_map: headers }), { maxHeaderBytes: size })).toMatchObject({ ok: true });
    expect(parseCheckRequest(check({ method: 'GET', header_map: headers }), { maxHeaderBytes: size - 1 })).toMatchObject({
      ok: false,
      reason: 'headers_too_large',
      detail: 'header "X-A" rejected',
    });
  });

  it('names a refused header by at most 64 characters of its name, never its value', () => {
    const name = `x-${'n'.repeat(100)}`;
    const result = parseCheckRequest(check({ method: 'GET', path: '/', headers: { [name]: 'secret\r\nvalue' } }), limits);
    expect(result).toMatchObject({ ok: false, reason: 'invalid_header_value', detail: `header ${JSON.stringify(name.slice(0, 64))} rejected` });
    expect(JSON.stringify(result)).not.toContain('secret');
  });
});

describe('refusals', () => {
  it('say what is missing or wrong, for the decision log', () => {
    const refused = (view: CheckRequestView, listener?: 'inbound') => parseCheckRequest(view, limits, listener);
    expect(refused({ attributes: { request: { http: { method: 'GET', path: '/' } } } })).toMatchObject({
      reason: 'missing_direction',
      detail: 'context_extensions.direction is not set on this route, and this listener declares no direction',
    });
    expect(refused({ attributes: { context_extensions: { direction: 'up' }, request: { http: { method: 'GET', path: '/' } } } })).toMatchObject({
      reason: 'unknown_direction',
      detail: 'context_extensions.direction must be inbound or outbound',
    });
    expect(refused({ attributes: { context_extensions: { direction: 'inbound' } } })).toMatchObject({ reason: 'malformed_request', detail: 'CheckRequest has no attributes.request.http' });
    expect(refused(check({ method: 'GET' }))).toMatchObject({ reason: 'malformed_request', detail: 'request has no path' });
    expect(refused(check({ path: '/' }))).toMatchObject({ reason: 'malformed_request', detail: 'request has no method' });
  });

  it('name a refused header of the header list by at most 64 characters of its name, an entry without a name as ""', () => {
    const name = `x-${'m'.repeat(100)}`;
    expect(parseCheckRequest(check({ method: 'GET', path: '/', header_map: entries([name, 'a\nb']) }), limits)).toMatchObject({
      reason: 'invalid_header_value',
      detail: `header ${JSON.stringify(name.slice(0, 64))} rejected`,
    });
    expect(parseCheckRequest(check({ method: 'GET', path: '/', header_map: { headers: [{ raw_value: Buffer.from('a\rb') }] } }), limits)).toMatchObject({
      reason: 'invalid_header_value',
      detail: 'header "" rejected',
    });
  });
});

describe('where each request attribute comes from', () => {
  it('sets the authority only from :authority, never from another pseudo-header', () => {
    const request = parsed({ method: 'GET', path: '/', header_map: entries([':authority', 'api.example'], [':scheme', 'https'], [':protocol', 'websocket']) });
    expect(request.authority).toBe('api.example');
  });

  it('has an empty query when the path has no ?', () => {
    expect(parsed({ method: 'GET', path: '/v1/x' })).toMatchObject({ path: '/v1/x', query: '' });
    expect(parsed({ method: 'GET', path: '/v1/x?' })).toMatchObject({ path: '/v1/x', query: '' });
    expect(parsed({ method: 'GET', path: '/?a=1?b' })).toMatchObject({ path: '/', query: 'a=1?b' });
  });

  it('counts a single Authorization header as single, so it is not refused as repeated', () => {
    expect(parsed({ method: 'GET', path: '/', headers: { authorization: 'Bearer abc' } }).duplicateHeaders.size).toBe(0);
    expect(parsed({ method: 'GET', path: '/' }).duplicateHeaders.size).toBe(0);
  });

  it('reads path, method and authority from the pseudo-headers when Envoy leaves the fields empty, the last of each winning', () => {
    const request = parsed({
      path: '',
      method: '',
      host: '',
      header_map: entries([':path', '/first'], [':path', '/v1/x?page=2'], [':method', 'delete'], [':authority', 'API.Example']),
    });
    expect(request).toMatchObject({ path: '/v1/x', query: 'page=2', method: 'DELETE', authority: 'api.example' });
    expect(request.headers.has(':path')).toBe(false);
  });

  it('falls back to the host header for the authority, lower-cased', () => {
    expect(parsed({ method: 'GET', path: '/', headers: { Host: 'Gw.Example:80' } }).authority).toBe('gw.example:80');
    expect(parsed({ method: 'GET', path: '/' }).authority).toBe('');
  });

  it("prefers the fields Envoy fills over pseudo-headers a list may also carry", () => {
    const request = parsed({ path: '/real', method: 'GET', host: 'real.example', header_map: entries([':path', '/other'], [':method', 'POST'], [':authority', 'other.example']) });
    expect(request).toMatchObject({ path: '/real', method: 'GET', authority: 'real.example' });
  });

  it("uses a header's value when its raw_value is empty", () => {
    const request = parsed({ method: 'GET', path: '/', header_map: { headers: [{ key: 'x-plain', value: 'v1', raw_value: Buffer.alloc(0) }, { key: 'x-none' }] } });
    expect(request.headers.get('x-plain')).toBe('v1');
    expect(request.headers.get('x-none')).toBe('');
  });

  it('reads the headers object when the header list is empty', () => {
    expect(parsed({ method: 'GET', path: '/', header_map: { headers: [] }, headers: { 'x-a': '1' } }).headers.get('x-a')).toBe('1');
  });

  it("takes the request id from x-request-id, else Envoy's own id, else none", () => {
    expect(parsed({ id: 'envoy-7', method: 'GET', path: '/', headers: { 'x-request-id': 'req-1' } }).requestId).toBe('req-1');
    expect(parsed({ id: 'envoy-7', method: 'GET', path: '/' }).requestId).toBe('envoy-7');
    expect(parsed({ method: 'GET', path: '/' }).requestId).toBe('');
  });

  it('has no peer principal when the connection carried none (an empty one is not a name)', () => {
    expect(parsed({ method: 'GET', path: '/' }, '').peerPrincipal).toBeUndefined();
    expect(parsed({ method: 'GET', path: '/' }).peerPrincipal).toBeUndefined();
    expect(parsed({ method: 'GET', path: '/' }, 'spiffe://td/ns/a/sa/b').peerPrincipal).toBe('spiffe://td/ns/a/sa/b');
  });

  it('sees a gRPC call only with a gRPC content type and a /package.Service/Method path', () => {
    const grpc = (contentType: string | undefined, path: string) =>
      parsed({ method: 'POST', path, headers: contentType === undefined ? {} : { 'content-type': contentType } }).grpc;
    expect(grpc('application/grpc', '/pkg.v1.Svc/Call')).toEqual({ service: 'pkg.v1.Svc', method: 'Call' });
    expect(grpc('application/grpc+json', '/Svc/Call')).toEqual({ service: 'Svc', method: 'Call' });
    expect(grpc(undefined, '/pkg.v1.Svc/Call')).toBeUndefined();
    expect(grpc('text/application/grpc', '/pkg.v1.Svc/Call')).toBeUndefined();
    for (const path of ['/pkg.v1.Svc/', '//Call', '/1pkg.Svc/Call', '/pkg.Svc/1Call', 'x/pkg.Svc/Call', '/pkg.Svc/Call/', '/pkg.Svc/Ca-ll', '/pk-g.Svc/Call']) {
      expect(grpc('application/grpc', path), path).toBeUndefined();
    }
  });
});

describe('the body', () => {
  /** `raw` null: no raw_body field at all. */
  const withBody = (headers: Record<string, string>, raw: Buffer | null = Buffer.from('{}')) =>
    parsed({ method: 'POST', path: '/', headers, ...(raw === null ? {} : { raw_body: raw }) }).body;

  it('is none when neither bytes nor a partial-body flag came', () => {
    expect(withBody({}, null)).toBeUndefined();
    expect(withBody({}, Buffer.alloc(0))).toBeUndefined();
  });

  it("counts as cut only when Envoy's partial-body header says true, even after a client's own copy", () => {
    expect(withBody({ 'x-envoy-auth-partial-body': 'false' })?.truncated).toBe(false);
    expect(withBody({ 'x-envoy-auth-partial-body': 'false, true' })?.truncated).toBe(true);
    expect(withBody({ 'x-envoy-auth-partial-body': 'nottrue' })?.truncated).toBe(false);
    expect(withBody({ 'x-envoy-auth-partial-body': 'true' }, null)).toMatchObject({ truncated: true, bytes: new Uint8Array(0) });
  });

  it('carries content-length only as a plain decimal of at most 15 digits', () => {
    expect(withBody({ 'content-length': '123' })?.contentLength).toBe(123);
    expect(withBody({ 'content-length': '999999999999999' })?.contentLength).toBe(999_999_999_999_999);
    for (const length of ['1234567890123456', '12a', 'a12', '-1', '', ' 12', '1e3']) {
      expect(withBody({ 'content-length': length })?.contentLength, length).toBeUndefined();
    }
  });

  it('carries the encoding and content type lower-cased, for the body readers to compare', () => {
    expect(withBody({ 'grpc-encoding': 'GZIP', 'content-type': 'Application/GRPC' })).toMatchObject({ grpcEncoding: 'gzip', contentType: 'application/grpc' });
    expect(withBody({})).toMatchObject({ grpcEncoding: undefined, contentType: undefined });
  });
});
