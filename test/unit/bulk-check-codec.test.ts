/**
 * The lean CheckBulkPermissions codec against @authzed/authzed-node's generated messages, which
 * the checker used before and the rest of the sidecar still uses. Whatever the checks ask, SpiceDB
 * must receive the request the generated encoder would have sent; whatever SpiceDB answers, the
 * checker must read each pair's echoed check and answer as the generated decoder would; and on
 * malformed answers the lean decoder may only refuse more.
 */
import { v1 } from '@authzed/authzed-node';
import fc from 'fast-check';
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import type { Consistency, PermissionQuery } from '../../src/core/ports.js';
import { decodeBulkCheckResponse, encodeBulkCheckRequest } from '../../src/spicedb/bulk-check-codec.js';
import type { BulkCheckPair } from '../../src/spicedb/bulk-check-codec.js';
import { consistencyMessage, toBulkItem } from '../../src/spicedb/permission-request.js';

/** The request the checker sent before: authzed-node's messages, built by check-request.ts. */
const reference = (queries: readonly PermissionQuery[], consistency: Consistency): v1.CheckBulkPermissionsRequest =>
  v1.CheckBulkPermissionsRequest.create({ consistency: consistencyMessage(consistency), items: queries.map(toBulkItem) });

/** `__proto__` is left out: the generated decoder's maps are plain objects, where it sets the prototype. */
const noProto = (text: string): boolean => text !== '__proto__';

function queryArbitrary(text: fc.Arbitrary<string>): fc.Arbitrary<PermissionQuery> {
  const key = text.filter(noProto);
  // JSON values as a caveat context may hold them: nested objects and lists, null, any double.
  const { value: json } = fc.letrec<{ value: unknown }>((tie) => ({
    value: fc.oneof(
      { depthSize: 'small' },
      fc.constant(null),
      fc.boolean(),
      fc.double(),
      text,
      fc.array(tie('value'), { maxLength: 3 }),
      fc.dictionary(key, tie('value'), { maxKeys: 3 }),
    ),
  }));
  return fc.record(
    {
      resource: fc.record({ type: text, id: text }),
      permission: text,
      subject: fc.record({ type: text, id: text, relation: text }, { requiredKeys: ['type', 'id'] }),
      consistency: fc.constant<Consistency>({ kind: 'minimize_latency' }),
      context: fc.dictionary(key, json, { maxKeys: 4 }),
    },
    { requiredKeys: ['resource', 'permission', 'subject', 'consistency'] },
  );
}

function consistencyArbitrary(text: fc.Arbitrary<string>): fc.Arbitrary<Consistency> {
  return fc.oneof(
    fc.constant<Consistency>({ kind: 'minimize_latency' }),
    fc.constant<Consistency>({ kind: 'fully_consistent' }),
    text.map((zedToken): Consistency => ({ kind: 'at_least_as_fresh', zedToken })),
  );
}

/** Well-formed text: any Unicode, as SpiceDB names, ids, tokens and JWT claims can hold. */
const wellFormedText = fc.string({ maxLength: 12, unit: 'grapheme' });
/**
 * Any UTF-16, lone surrogates included (a JWT claim is JSON, and JSON can escape one), short and
 * long: protobufjs writes strings under 40 bytes with its own UTF-8 encoder and longer ones with Node's.
 */
const utf16Unit = fc.oneof(fc.constantFrom('\ud83d', '\ude00', '\udbff'), fc.string({ minLength: 1, maxLength: 1, unit: 'binary' }));
const anyText = fc.oneof(fc.string({ maxLength: 12, unit: utf16Unit }), fc.string({ minLength: 40, maxLength: 60, unit: utf16Unit }));

describe('the CheckBulkPermissions request encoder', () => {
  it('writes what the generated decoder reads back as the request check-request.ts builds', () => {
    fc.assert(
      fc.property(fc.array(queryArbitrary(wellFormedText), { minLength: 1, maxLength: 6 }), consistencyArbitrary(wellFormedText), (queries, consistency) => {
        expect(v1.CheckBulkPermissionsRequest.fromBinary(encodeBulkCheckRequest(queries, consistency))).toEqual(reference(queries, consistency));
      }),
      { numRuns: 500 },
    );
  });

  it('sends SpiceDB the very bytes the generated encoder sends, lone surrogates included', () => {
    fc.assert(
      fc.property(fc.array(queryArbitrary(anyText), { minLength: 1, maxLength: 4 }), consistencyArbitrary(anyText), (queries, consistency) => {
        expect(Buffer.from(encodeBulkCheckRequest(queries, consistency))).toEqual(Buffer.from(v1.CheckBulkPermissionsRequest.toBinary(reference(queries, consistency))));
      }),
      { numRuns: 500 },
    );
  });

  it('refuses a caveat context value JSON has no value for, as the generated encoder does', () => {
    const query: PermissionQuery = {
      resource: { type: 'doc', id: 'd1' },
      permission: 'view',
      subject: { type: 'user', id: 'alice' },
      consistency: { kind: 'minimize_latency' },
      context: { region: undefined },
    };
    expect(() => encodeBulkCheckRequest([query], query.consistency)).toThrow(TypeError);
    expect(() => toBulkItem(query)).toThrow();
  });
});

// ---------------------------------------------------------------- the response

const text = fc.string({ maxLength: 12, unit: 'grapheme' });
const objectReference = fc.record({ objectType: text, objectId: text }, { requiredKeys: [] });
const context = fc.dictionary(text.filter(noProto), fc.oneof(text, fc.double(), fc.boolean(), fc.constant(null)), { maxKeys: 3 }).map((fields) => v1.createStructFromObject(fields));
const echoedItem = fc.record(
  {
    resource: objectReference,
    permission: text,
    subject: fc.record({ object: objectReference, optionalRelation: text }, { requiredKeys: [] }),
    context,
  },
  { requiredKeys: [] },
);
/** Beyond the defined values too: SpiceDB's enum may grow, and an unknown value must not read as one we know. */
const permissionship = fc.oneof(fc.constantFrom(0, 1, 2, 3), fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }));
const pairAnswer = fc.oneof(
  fc.constant({ oneofKind: undefined }),
  fc.record({
    oneofKind: fc.constant('item' as const),
    item: fc.record(
      {
        permissionship,
        partialCaveatInfo: fc.record({ missingRequiredContext: fc.array(text, { maxLength: 3 }) }),
        debugTrace: fc.record({ schemaUsed: text }),
      },
      { requiredKeys: ['permissionship'] },
    ),
  }),
  fc.record({
    oneofKind: fc.constant('error' as const),
    error: fc.record({
      code: fc.integer({ min: -1, max: 20 }),
      message: text,
      details: fc.array(fc.record({ typeUrl: text, value: fc.uint8Array({ maxLength: 16 }) }), { maxLength: 2 }),
    }),
  }),
);
const pair = fc.record({ request: echoedItem, response: pairAnswer }, { requiredKeys: ['response'] }).map((value) => v1.CheckBulkPermissionsPair.create(value));
const response = fc
  .record({ checkedAt: fc.record({ token: text }), pairs: fc.array(pair, { maxLength: 8 }) }, { requiredKeys: ['pairs'] })
  .map((value) => v1.CheckBulkPermissionsResponse.create(value));

/** What the checker reads of a pair the generated decoder decoded: the lean decoder's shape. */
function readByChecker(decoded: v1.CheckBulkPermissionsPair): BulkCheckPair {
  const { request, response: answer } = decoded;
  return {
    resourceType: request?.resource?.objectType ?? '',
    resourceId: request?.resource?.objectId ?? '',
    permission: request?.permission ?? '',
    subjectType: request?.subject?.object?.objectType ?? '',
    subjectId: request?.subject?.object?.objectId ?? '',
    subjectRelation: request?.subject?.optionalRelation ?? '',
    answer: answer.oneofKind ?? 'none',
    permissionship: answer.oneofKind === 'item' ? answer.item.permissionship : 0,
    errorCode: answer.oneofKind === 'error' ? answer.error.code : 0,
    errorMessage: answer.oneofKind === 'error' ? answer.error.message : '',
  };
}

const generatedReading = (bytes: Uint8Array): BulkCheckPair[] => v1.CheckBulkPermissionsResponse.fromBinary(bytes).pairs.map(readByChecker);

/** A CheckBulkPermissionsResponse holding one pair (field 2) of these bytes. */
const responseWithPair = (pairBytes: Uint8Array): Uint8Array => protobuf.Writer.create().uint32((2 << 3) | 2).bytes(pairBytes).finish();

describe('the CheckBulkPermissions response decoder', () => {
  it('reads every pair as the generated decoder does, for any answer SpiceDB can send', () => {
    fc.assert(
      fc.property(response, (answer) => {
        const bytes = v1.CheckBulkPermissionsResponse.toBinary(answer);
        expect(decodeBulkCheckResponse(bytes)).toEqual(generatedReading(bytes));
      }),
      { numRuns: 500 },
    );
  });

  it('merges a pair sent in parts as protobuf defines: the echo merged, the last answer winning', () => {
    fc.assert(
      fc.property(fc.array(pair, { minLength: 2, maxLength: 3 }), (parts) => {
        const joined = Buffer.concat(parts.map((part) => v1.CheckBulkPermissionsPair.toBinary(part)));
        const bytes = responseWithPair(joined);
        expect(decodeBulkCheckResponse(bytes)).toEqual(generatedReading(bytes));
      }),
      { numRuns: 300 },
    );
  });

  it('never hangs or answers garbage on arbitrary bytes: it decodes or throws', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        try {
          expect(Array.isArray(decodeBulkCheckResponse(bytes))).toBe(true);
        } catch (error) {
          expect(error).toBeInstanceOf(Error);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('skips a permissionship sent with another wire type instead of misreading it as an answer', () => {
    // pair { item { permissionship (field 1) as a length-delimited field holding 0x02 } }
    const item = Buffer.from([(1 << 3) | 2, 0x01, 0x02]);
    const bytes = responseWithPair(Buffer.from([(2 << 3) | 2, item.length, ...item]));
    expect(decodeBulkCheckResponse(bytes)).toEqual([expect.objectContaining({ answer: 'item', permissionship: 0 })]);
  });

  it('refuses a nested message longer than what contains it', () => {
    // pair of 3 bytes holding an echoed request (field 1) that claims 10.
    const bytes = Buffer.from([0x12, 0x03, (1 << 3) | 2, 0x0a, 0x00]);
    expect(() => decodeBulkCheckResponse(bytes)).toThrow(RangeError);
  });
});
