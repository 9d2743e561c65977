/**
 * The lean CheckRequest decoder on shapes a conformant encoder does not write but a peer could
 * send: fields it does not read, placed inside the messages it does read. Each must be skipped,
 * never read as the field next to it: an unknown field read as a header's value or as a
 * context_extensions value would let bytes Envoy never meant as that value decide a request.
 */
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { decodeCheckRequest } from '../../src/envoy/check-request-decoder.js';

const DELIMITED = 2;
const VARINT = 0;
const tag = (field: number, wireType: number) => (field << 3) | wireType;

type Write = (writer: protobuf.Writer) => void;
const str = (field: number, value: string): Write => (w) => w.uint32(tag(field, DELIMITED)).string(value);
const bytes = (field: number, value: Buffer): Write => (w) => w.uint32(tag(field, DELIMITED)).bytes(value);
const int = (field: number, value: number): Write => (w) => w.uint32(tag(field, VARINT)).uint32(value);
const msg = (field: number, ...parts: Write[]): Write => (w) => {
  w.uint32(tag(field, DELIMITED)).fork();
  for (const part of parts) part(w);
  w.ldelim();
};
const encode = (...parts: Write[]): Uint8Array => {
  const writer = protobuf.Writer.create();
  for (const part of parts) part(writer);
  return writer.finish();
};

// Field numbers: CheckRequest.attributes 1; AttributeContext.source 1, request 4,
// context_extensions 10; Peer.principal 4, certificate 5; Request.http 2; HttpRequest.headers 3,
// path 4, header_map 13; HeaderMap.headers 1; HeaderValue key 1, value 2, raw_value 3.
const attributes = (...parts: Write[]) => msg(1, ...parts);
const extension = (...parts: Write[]) => msg(10, ...parts);
const http = (...parts: Write[]) => msg(4, msg(2, ...parts));
const headerValue = (...parts: Write[]) => msg(13, msg(1, ...parts));

describe('fields the CheckRequest decoder does not read', () => {
  it('never become a context_extensions value: an unknown field after the value is skipped', () => {
    const view = decodeCheckRequest(encode(attributes(extension(str(1, 'direction'), str(2, 'inbound'), str(3, 'outbound'), int(4, 7)))));
    expect(view.attributes?.context_extensions).toEqual({ direction: 'inbound' });
  });

  it('are skipped whole, never read from inside: a payload shaped like the field next to it is not that field', () => {
    // An unknown field whose length byte is itself the tag of `value` (map entry) or `raw_value`
    // (header), and whose payload starts like that field: only a decoder that read the unknown
    // field's insides as fields would see "outbound" or "Bearer forged".
    const shaped = (knownTag: number, value: string) => {
      const inner = Buffer.concat([Buffer.from([value.length]), Buffer.from(value), Buffer.alloc(knownTag - 1 - value.length, tag(4, VARINT))]);
      expect(inner.length).toBe(knownTag);
      return bytes(7, inner);
    };
    const entry = decodeCheckRequest(encode(attributes(extension(str(1, 'direction'), str(2, 'inbound'), shaped(tag(2, DELIMITED), 'outbound')))));
    expect(entry.attributes?.context_extensions).toEqual({ direction: 'inbound' });
    const header = decodeCheckRequest(encode(attributes(http(headerValue(str(1, 'authorization'), bytes(3, Buffer.from('Bearer real')), shaped(tag(3, DELIMITED), 'Bearer forged'))))));
    expect(header.attributes?.request?.http?.header_map?.headers).toEqual([{ key: 'authorization', raw_value: 'Bearer real' }]);
  });

  it('read a map entry without a value as "", and without a key as the key ""', () => {
    const view = decodeCheckRequest(encode(attributes(extension(str(1, 'audience')), extension(str(2, 'orphan')))));
    expect({ ...view.attributes?.context_extensions }).toEqual({ audience: '', '': 'orphan' });
  });

  it("never become a header's raw value or name", () => {
    const view = decodeCheckRequest(
      encode(attributes(http(str(4, '/x'), headerValue(str(1, 'authorization'), bytes(3, Buffer.from('Bearer real')), str(5, 'Bearer forged'), int(6, 1))))),
    );
    expect(view.attributes?.request?.http?.header_map?.headers).toEqual([{ key: 'authorization', raw_value: 'Bearer real' }]);
  });

  it("never become the peer's principal: the certificate after it is not read", () => {
    const view = decodeCheckRequest(encode(attributes(msg(1, str(4, 'spiffe://td/ns/a/sa/real'), str(5, 'spiffe://td/ns/a/sa/forged'), str(2, 'svc')))));
    expect(view.attributes?.source).toEqual({ principal: 'spiffe://td/ns/a/sa/real' });
  });

  it('at the top level are skipped, not read as the attributes', () => {
    const forged = encode(extension(str(1, 'direction'), str(2, 'outbound')));
    const view = decodeCheckRequest(encode(attributes(extension(str(1, 'direction'), str(2, 'inbound'))), bytes(2, Buffer.from(forged)), int(3, 1)));
    expect(view.attributes?.context_extensions).toEqual({ direction: 'inbound' });
  });

  it('has nothing to say of a request without attributes', () => {
    expect(decodeCheckRequest(encode(int(3, 1)))).toEqual({});
  });

  it('names what ran past its end when a nested message is cut', () => {
    expect(() => decodeCheckRequest(Buffer.from([0x0a, 0x04, (4 << 3) | 2, 0x0a, 0x12, 0x00]))).toThrow('a nested message runs past the end of the request');
  });
});
