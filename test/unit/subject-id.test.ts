import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeSubjectId, encodeSubjectId, MAX_OBJECT_ID_BYTES, SPICEDB_OBJECT_ID } from '../../src/core/subject-id.js';

const ALLOWED = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/_|-=+'.split('');
/** Strings biased towards the interesting alphabet: allowed chars, the escape char, dots, `*`, non-ASCII. */
const tricky = fc.string({
  unit: fc.oneof(fc.constantFrom(...ALLOWED), fc.constantFrom('=', '.', '@', '*', ' ', '%', 'é', '日', '😀', '=2E'), fc.string({ unit: 'binary', maxLength: 1 })),
  maxLength: 60,
});
const anyId = fc.oneof(tricky, fc.string({ unit: 'binary' }), fc.string({ unit: 'grapheme' }));

describe('subject id escaping', () => {
  it('leaves ordinary ids readable and unchanged', () => {
    for (const id of ['alice', 'auth0|5f1e', 'svc/vmcontroller', 'a-b_c=d+e', 'YWJj==']) expect(encodeSubjectId(id)).toBe(id);
  });

  it('escapes the Teleport user id from the seed so SpiceDB accepts it', () => {
    const encoded = encodeSubjectId('cloud-teleport-aleksander.rykalin');
    expect(encoded).toBe('=cloud-teleport-aleksander=2Erykalin');
    expect(encoded).toMatch(SPICEDB_OBJECT_ID);
    expect(decodeSubjectId(encoded!)).toBe('cloud-teleport-aleksander.rykalin');
  });

  it('never produces the wildcard and escapes ids that start with the escape character', () => {
    expect(encodeSubjectId('*')).toBe('==2A');
    expect(encodeSubjectId('=2A')).toBe('==3D2A');
    expect(encodeSubjectId('')).toBe('=');
    expect(decodeSubjectId('=')).toBe('');
    // A leading U+FEFF is part of the id: a UTF-8 decoder drops it as a byte-order mark by default.
    expect(decodeSubjectId(encodeSubjectId('\ufeffalice') ?? '')).toBe('\ufeffalice');
  });

  it('round-trips and always yields a valid SpiceDB object id', () => {
    fc.assert(
      fc.property(anyId, (id) => {
        const encoded = encodeSubjectId(id);
        if (encoded === undefined) {
          // Only unrepresentable inputs are refused: lone surrogates or more than 1024 bytes encoded.
          const wellFormed = !/[\uD800-\uDFFF]/.test(id.replace(/[\uD800-\uDBFF][\uDC00-\uDFFF]/g, ''));
          expect(!wellFormed || Buffer.byteLength(id) * 3 + 1 > MAX_OBJECT_ID_BYTES || id.length > MAX_OBJECT_ID_BYTES).toBe(true);
          return;
        }
        expect(encoded).toMatch(SPICEDB_OBJECT_ID);
        expect(encoded).not.toBe('*');
        expect(Buffer.byteLength(encoded)).toBeLessThanOrEqual(MAX_OBJECT_ID_BYTES);
        expect(decodeSubjectId(encoded)).toBe(id);
      }),
      { numRuns: 5000 },
    );
  });

  it('is injective: two different ids never share an encoding', () => {
    fc.assert(
      fc.property(anyId, anyId, (a, b) => {
        fc.pre(a !== b);
        const ea = encodeSubjectId(a);
        const eb = encodeSubjectId(b);
        if (ea !== undefined && eb !== undefined) expect(ea).not.toBe(eb);
      }),
      { numRuns: 5000 },
    );
  });

  it('decodes only canonical encodings, so every valid object id has at most one preimage', () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom(...ALLOWED, 'A', 'F', '2', 'E', '3', 'D'), minLength: 1, maxLength: 30 }), (text) => {
        const decoded = decodeSubjectId(text);
        if (decoded !== undefined) expect(encodeSubjectId(decoded)).toBe(text);
      }),
      { numRuns: 5000 },
    );
    expect(decodeSubjectId('=61')).toBeUndefined(); // 'a' escaped although it could be literal
    expect(decodeSubjectId('=2e')).toBeUndefined(); // lower-case hex
    expect(decodeSubjectId('=2')).toBeUndefined(); // truncated
    expect(decodeSubjectId('=abc')).toBeUndefined(); // could have passed unchanged
  });

  it('decodes escapes only as two upper-case hex digits, and ids only up to 1024 bytes', () => {
    expect(decodeSubjectId('=a=2Eb')).toBe('a.b');
    expect(decodeSubjectId('==2A')).toBe('*');
    expect(decodeSubjectId('==09')).toBe('\t');
    // Digits and A-F only: ':' follows '9', 'G' follows 'F', 'a' is lower case.
    for (const bad of ['=a=3:', '==2a', '==0Z', '==0G', '==/0', '==@0']) expect(decodeSubjectId(bad), bad).toBeUndefined();
    expect(decodeSubjectId('a'.repeat(1024))).toBe('a'.repeat(1024));
    expect(decodeSubjectId('a'.repeat(1025))).toBeUndefined();
    expect(decodeSubjectId(`=${'=2E'.repeat(341)}`)).toBe('.'.repeat(341));
    expect(decodeSubjectId('')).toBeUndefined();
  });

  it('refuses ids whose encoding would exceed the 1024-byte limit instead of truncating', () => {
    expect(encodeSubjectId('a'.repeat(1024))).toBe('a'.repeat(1024));
    expect(encodeSubjectId('a'.repeat(1025))).toBeUndefined();
    expect(encodeSubjectId('.'.repeat(341))).toHaveLength(1024);
    expect(encodeSubjectId('.'.repeat(342))).toBeUndefined();
    expect(encodeSubjectId('\uD800')).toBeUndefined();
  });

  it('refuses an id that is not well-formed UTF-16 (a lone surrogate has no UTF-8 form to round-trip), and encodes a surrogate pair', () => {
    for (const id of ['a\uDC00b', '\uDFFF', 'a\uD800b', 'a\uDBFF', '\uDC00\uD800']) expect(encodeSubjectId(id), JSON.stringify(id)).toBeUndefined();
    expect(encodeSubjectId('a\uD83D\uDE00')).toBe('=a=F0=9F=98=80');
    expect(encodeSubjectId('\uDBFF\uDFFF')).toBe('==F4=8F=BF=BF');
  });
});
