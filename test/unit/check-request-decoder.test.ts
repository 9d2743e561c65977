/**
 * The listener's CheckRequest decoder reads only what the sidecar uses. Whatever Envoy sends, the
 * request the decision core sees must be the one proto-loader's full decoder (the reference, and
 * what the listener used before) would have given: checked on random CheckRequests carrying every
 * field Envoy fills, and on the malformed shapes where the two may differ, the lean one only ever
 * refusing more.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeCheckRequest } from '../../src/envoy/check-request-decoder.js';
import { envoyAuthProto } from '../../src/envoy/protos.js';
import { parseCheckRequest } from '../../src/envoy/request-context-parser.js';
import type { CheckRequest } from '../../src/generated/envoy/service/auth/v3/CheckRequest.js';

const method = envoyAuthProto().envoy.service.auth.v3.Authorization.service.Check;
const encode = (request: CheckRequest): Buffer => method.requestSerialize(request);
const referenceDecode = method.requestDeserialize;
const limits = { maxHeaderBytes: 65536 };

// Header names as Envoy forwards them (lower case, pseudo-headers included) and anything else a
// client could send; `__proto__` is left to its own test, since the reference decoder loses it.
const headerName = fc.oneof(
  fc.constantFrom(':method', ':path', ':authority', 'authorization', 'content-type', 'x-request-id', 'host', 'grpc-encoding', 'content-length', 'traceparent'),
  fc.string({ minLength: 1, maxLength: 12 }).filter((name) => name !== '__proto__'),
);
const text = fc.string({ maxLength: 40, unit: 'grapheme' });
const dictionary = fc.dictionary(headerName, text, { maxKeys: 6 });
const address = fc.record({ socket_address: fc.record({ address: fc.constant('127.0.0.1'), port_value: fc.nat({ max: 65535 }) }) });

const httpRequest = fc.record(
  {
    id: text,
    method: fc.constantFrom('GET', 'POST', 'put', ''),
    headers: dictionary,
    path: fc.oneof(fc.constant('/v1/clouds/cl0/items?x=1'), text),
    host: text,
    scheme: fc.constantFrom('http', 'https'),
    query: text,
    fragment: text,
    size: fc.nat().map(String),
    protocol: fc.constantFrom('HTTP/1.1', 'HTTP/2'),
    body: text,
    raw_body: fc.uint8Array({ maxLength: 64 }).map((bytes) => Buffer.from(bytes)),
    header_map: fc.record({
      headers: fc.array(
        fc.record({ key: headerName, value: text, raw_value: fc.uint8Array({ maxLength: 24 }).map((bytes) => Buffer.from(bytes)) }, { requiredKeys: ['key'] }),
        { maxLength: 8 },
      ),
    }),
  },
  { requiredKeys: [] },
);

const checkRequest: fc.Arbitrary<CheckRequest> = fc.record(
  {
    attributes: fc.record(
      {
        source: fc.record({ address, principal: text, certificate: fc.string({ maxLength: 300 }), service: text, labels: dictionary }, { requiredKeys: [] }),
        destination: fc.record({ address, principal: text }, { requiredKeys: [] }),
        request: fc.record({ time: fc.record({ seconds: fc.nat().map(String), nanos: fc.nat({ max: 999_999_999 }) }), http: httpRequest }, { requiredKeys: [] }),
        context_extensions: fc.oneof(dictionary, fc.record({ direction: fc.constantFrom('inbound', 'outbound', 'sideways') })),
        tls_session: fc.record({ sni: text }),
      },
      { requiredKeys: [] },
    ),
  },
  { requiredKeys: [] },
);

/** What the decision core is handed, in a form toEqual compares (Maps and Buffers as they are). */
const parsed = (view: Parameters<typeof parseCheckRequest>[0]) => [parseCheckRequest(view, limits), parseCheckRequest(view, limits, 'inbound')];

describe('the CheckRequest decoder', () => {
  it('hands the decision core what the full decoder would, for any CheckRequest Envoy can send', () => {
    fc.assert(
      fc.property(checkRequest, (request) => {
        const bytes = encode(request);
        expect(parsed(decodeCheckRequest(bytes))).toEqual(parsed(referenceDecode(bytes)));
      }),
      { numRuns: 500 },
    );
  });

  it('reads the fields it keeps exactly as the full decoder does', () => {
    fc.assert(
      fc.property(checkRequest, (request) => {
        const bytes = encode(request);
        const lean = decodeCheckRequest(bytes);
        const full = referenceDecode(bytes);
        const http = full.attributes?.request?.http;
        expect(lean.attributes?.source?.principal).toBe(full.attributes?.source?.principal);
        expect({ ...lean.attributes?.context_extensions }).toEqual({ ...full.attributes?.context_extensions });
        expect(lean.attributes?.request?.http?.path).toBe(http?.path);
        expect(lean.attributes?.request?.http?.raw_body).toEqual(http?.raw_body);
        expect({ ...lean.attributes?.request?.http?.headers }).toEqual({ ...http?.headers });
        // raw_value's bytes come as a latin1 string (one character per byte), not a Buffer.
        const asLatin1 = http?.header_map?.headers?.map((entry) => (entry.raw_value === undefined ? entry : { ...entry, raw_value: entry.raw_value.toString('latin1') }));
        expect(lean.attributes?.request?.http?.header_map?.headers).toEqual(asLatin1);
      }),
      { numRuns: 300 },
    );
  });

  it('never hangs or answers garbage on arbitrary bytes: it decodes or throws', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        try {
          const view = decodeCheckRequest(bytes);
          expect(typeof view).toBe('object');
        } catch (error) {
          expect(error).toBeInstanceOf(Error);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('keeps a header named __proto__ as a header (the full decoder drops it into the prototype slot)', () => {
    const bytes = encode({ attributes: { request: { http: { headers: { __proto__: 'x', accept: '*/*' } as unknown as Record<string, string> } } } });
    // Built without a prototype, so the encoder saw a real key.
    const withKey = encode({ attributes: { request: { http: { headers: Object.assign(Object.create(null) as Record<string, string>, { ['__proto__']: 'x', accept: '*/*' }) } } } });
    expect(withKey.length).toBeGreaterThan(bytes.length);
    const headers = decodeCheckRequest(withKey).attributes?.request?.http?.headers ?? {};
    expect(Object.keys(headers).sort()).toEqual(['__proto__', 'accept']);
    expect(headers['__proto__']).toBe('x');
  });

  it('skips a known field sent with another wire type, where protobufjs would misread it', () => {
    // attributes { context_extensions (field 10) as a varint, then a proper entry direction=inbound }
    const entry = Buffer.from([0x0a, 0x09, ...Buffer.from('direction'), 0x12, 0x07, ...Buffer.from('inbound')]);
    const attributes = Buffer.concat([Buffer.from([(10 << 3) | 0, 0x05]), Buffer.from([(10 << 3) | 2, entry.length]), entry]);
    const bytes = Buffer.concat([Buffer.from([0x0a, attributes.length]), attributes]);
    expect(decodeCheckRequest(bytes).attributes?.context_extensions?.direction).toBe('inbound');
  });

  it('refuses a nested message longer than what contains it', () => {
    // attributes of 4 bytes holding request (field 4) that claims 10.
    const bytes = Buffer.from([0x0a, 0x04, (4 << 3) | 2, 0x0a, 0x12, 0x00]);
    expect(() => decodeCheckRequest(bytes)).toThrow(RangeError);
  });
});
