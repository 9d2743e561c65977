/**
 * CheckBulkPermissions on the wire, as the sidecar uses it, with protobufjs's Writer and Reader
 * instead of @authzed/authzed-node's generated messages (protobuf-ts). The request is written
 * straight from the PermissionQuery values, without building a message object per item first; of
 * the response, only what the checker reads is kept: for each pair, the check SpiceDB says it
 * answers (to refuse a misattributed answer) and its permissionship or error status. The rest
 * (checked_at, partial caveat info, debug traces, error details, the echoed caveat context) is
 * skipped unread.
 *
 * Field numbers: authzed/api/v1/permission_service.proto (CheckBulkPermissionsRequest, -Item,
 * -Response, -Pair, -ResponseItem, Consistency), authzed/api/v1/core.proto (ObjectReference,
 * SubjectReference, ZedToken), google/protobuf/struct.proto and google/rpc/status.proto.
 * test/unit/bulk-check-codec.test.ts holds them to the generated messages: what this encoder writes
 * decodes with `v1.CheckBulkPermissionsRequest` to the request check-request.ts builds, and this
 * decoder reads every random response as `v1.CheckBulkPermissionsResponse` does.
 *
 * Like the listener's CheckRequest decoder (src/envoy/check-request-decoder.ts), the decoder is
 * stricter than the generated one, never looser: a known field arriving with another wire type is
 * skipped as unknown (so it can only leave a pair unanswered or its echo unmatched, both failures),
 * and a nested message whose fields run past its declared length is refused. A singular message
 * sent twice is merged and the last of a oneof wins, as protobuf defines and protobuf-ts does.
 */
import protobuf from 'protobufjs';
import { DELIMITED, FIXED64, VARINT, readMessage } from '../base/protobuf-fields.js';
import type { FieldReader } from '../base/protobuf-fields.js';
import type { Consistency, PermissionQuery } from '../core/ports.js';

type Reader = protobuf.Reader;
type Writer = protobuf.Writer;


// ---------------------------------------------------------------- request

const LONE_SURROGATE = /\p{Surrogate}/u;
const LONE_SURROGATES = /\p{Surrogate}/gu;

/**
 * Writes `text` as UTF-8, a lone surrogate (which a JWT claim in a caveat context can hold) as
 * U+FFFD, as the generated encoder's TextEncoder does. protobufjs would write it as bytes that
 * are not UTF-8 in a short string and as U+FFFD in a long one.
 */
function writeString(writer: Writer, tag: number, text: string): void {
  writer.uint32(tag).string(LONE_SURROGATE.test(text) ? text.replace(LONE_SURROGATES, '\uFFFD') : text);
}

/** An object reference's fields, empty ones left out as proto3 does. */
function writeObjectReference(writer: Writer, type: string, id: string): void {
  if (type !== '') writeString(writer, DELIMITED(1), type);
  if (id !== '') writeString(writer, DELIMITED(2), id);
}

/** A google.protobuf.Value of a JSON value; throws on what JSON has no value for (undefined, a function). */
function writeValue(writer: Writer, value: unknown): void {
  switch (typeof value) {
    case 'number':
      writer.uint32(FIXED64(2)).double(value);
      return;
    case 'string':
      writeString(writer, DELIMITED(3), value);
      return;
    case 'boolean':
      writer.uint32(VARINT(4)).bool(value);
      return;
    case 'object':
      if (value === null) writer.uint32(VARINT(1)).int32(0);
      else if (Array.isArray(value)) {
        writer.uint32(DELIMITED(6)).fork();
        for (const element of value as readonly unknown[]) {
          writer.uint32(DELIMITED(1)).fork();
          writeValue(writer, element);
          writer.ldelim();
        }
        writer.ldelim();
      } else {
        writer.uint32(DELIMITED(5)).fork();
        writeStructFields(writer, value as Readonly<Record<string, unknown>>);
        writer.ldelim();
      }
      return;
    default:
      throw new TypeError(`caveat context holds a ${typeof value}, which has no JSON value`);
  }
}

/** A google.protobuf.Struct's fields: one map entry (key 1, Value 2) per own property. */
function writeStructFields(writer: Writer, object: Readonly<Record<string, unknown>>): void {
  for (const key of Object.keys(object)) {
    writer.uint32(DELIMITED(1)).fork();
    writeString(writer, DELIMITED(1), key);
    writer.uint32(DELIMITED(2)).fork();
    writeValue(writer, object[key]);
    writer.ldelim().ldelim();
  }
}

function writeConsistency(writer: Writer, consistency: Consistency): void {
  writer.uint32(DELIMITED(1)).fork();
  switch (consistency.kind) {
    case 'minimize_latency':
      writer.uint32(VARINT(1)).bool(true);
      break;
    case 'at_least_as_fresh':
      writer.uint32(DELIMITED(2)).fork();
      if (consistency.zedToken !== '') writeString(writer, DELIMITED(1), consistency.zedToken);
      writer.ldelim();
      break;
    case 'fully_consistent':
      writer.uint32(VARINT(4)).bool(true);
      break;
  }
  writer.ldelim();
}

function writeItem(writer: Writer, query: PermissionQuery): void {
  writer.uint32(DELIMITED(2)).fork();
  writer.uint32(DELIMITED(1)).fork();
  writeObjectReference(writer, query.resource.type, query.resource.id);
  writer.ldelim();
  if (query.permission !== '') writeString(writer, DELIMITED(2), query.permission);
  writer.uint32(DELIMITED(3)).fork().uint32(DELIMITED(1)).fork();
  writeObjectReference(writer, query.subject.type, query.subject.id);
  writer.ldelim();
  const relation = query.subject.relation ?? '';
  if (relation !== '') writeString(writer, DELIMITED(2), relation);
  writer.ldelim();
  if (query.context !== undefined) {
    writer.uint32(DELIMITED(4)).fork();
    writeStructFields(writer, query.context);
    writer.ldelim();
  }
  writer.ldelim();
}

/**
 * The CheckBulkPermissionsRequest asking `queries` at `consistency`, encoded. Throws a TypeError
 * when a caveat context holds a value JSON has none for (the generated encoder throws too).
 */
export function encodeBulkCheckRequest(queries: readonly PermissionQuery[], consistency: Consistency): Uint8Array {
  const writer = protobuf.Writer.create();
  writeConsistency(writer, consistency);
  for (const query of queries) writeItem(writer, query);
  return writer.finish();
}

// ---------------------------------------------------------------- response

/** One pair of a CheckBulkPermissionsResponse, as far as the checker reads it. */
export interface BulkCheckPair {
  /** The check SpiceDB says this pair answers; '' for a field it did not send. */
  resourceType: string;
  resourceId: string;
  permission: string;
  subjectType: string;
  subjectId: string;
  subjectRelation: string;
  /** Which of the pair's `response` oneof came, the last one sent if several did. */
  answer: 'item' | 'error' | 'none';
  /** CheckPermissionResponse.Permissionship's number when `answer` is 'item' (0 when not sent, or another answer). */
  permissionship: number;
  /** The item's google.rpc.Status when `answer` is 'error' (0 and '' otherwise). */
  errorCode: number;
  errorMessage: string;
}

/** One nested message of the response (protobuf-fields.ts). */
function message<T>(reader: Reader, length: number, into: T, field: FieldReader<T>): T {
  return readMessage(reader, length, into, field, 'response');
}

// Each message's field reader is a module-level function, not a closure made per call.

function resourceField(reader: Reader, tag: number, into: BulkCheckPair): boolean {
  if (tag === DELIMITED(1)) into.resourceType = reader.string();
  else if (tag === DELIMITED(2)) into.resourceId = reader.string();
  else return false;
  return true;
}

function subjectObjectField(reader: Reader, tag: number, into: BulkCheckPair): boolean {
  if (tag === DELIMITED(1)) into.subjectType = reader.string();
  else if (tag === DELIMITED(2)) into.subjectId = reader.string();
  else return false;
  return true;
}

function subjectField(reader: Reader, tag: number, into: BulkCheckPair): boolean {
  if (tag === DELIMITED(1)) message(reader, reader.uint32(), into, subjectObjectField);
  else if (tag === DELIMITED(2)) into.subjectRelation = reader.string();
  else return false;
  return true;
}

/** The echoed CheckBulkPermissionsRequestItem; its caveat context (4) is skipped. */
function echoedItemField(reader: Reader, tag: number, into: BulkCheckPair): boolean {
  switch (tag) {
    case DELIMITED(1):
      message(reader, reader.uint32(), into, resourceField);
      return true;
    case DELIMITED(2):
      into.permission = reader.string();
      return true;
    case DELIMITED(3):
      message(reader, reader.uint32(), into, subjectField);
      return true;
    default:
      return false;
  }
}

/** CheckBulkPermissionsResponseItem: the permissionship (1); caveat info and debug trace skipped. */
function responseItemField(reader: Reader, tag: number, into: BulkCheckPair): boolean {
  if (tag !== VARINT(1)) return false;
  into.permissionship = reader.int32();
  return true;
}

/** google.rpc.Status: code (1) and message (2); details skipped. */
function statusField(reader: Reader, tag: number, into: BulkCheckPair): boolean {
  if (tag === VARINT(1)) into.errorCode = reader.int32();
  else if (tag === DELIMITED(2)) into.errorMessage = reader.string();
  else return false;
  return true;
}

/** Clears what the pair's previous oneof member left. */
function answerNone(pair: BulkCheckPair): void {
  pair.permissionship = 0;
  pair.errorCode = 0;
  pair.errorMessage = '';
}

function pairField(reader: Reader, tag: number, into: BulkCheckPair): boolean {
  switch (tag) {
    case DELIMITED(1):
      message(reader, reader.uint32(), into, echoedItemField);
      return true;
    case DELIMITED(2):
      // A oneof member sent again merges into the one before; the other member replaces it.
      if (into.answer !== 'item') answerNone(into);
      into.answer = 'item';
      message(reader, reader.uint32(), into, responseItemField);
      return true;
    case DELIMITED(3):
      if (into.answer !== 'error') answerNone(into);
      into.answer = 'error';
      message(reader, reader.uint32(), into, statusField);
      return true;
    default:
      return false;
  }
}

function emptyPair(): BulkCheckPair {
  return { resourceType: '', resourceId: '', permission: '', subjectType: '', subjectId: '', subjectRelation: '', answer: 'none', permissionship: 0, errorCode: 0, errorMessage: '' };
}

/** The pairs of a CheckBulkPermissionsResponse, in order. Throws on bytes that are not a well-formed message. */
export function decodeBulkCheckResponse(bytes: Uint8Array): BulkCheckPair[] {
  const reader = protobuf.Reader.create(bytes);
  const pairs: BulkCheckPair[] = [];
  while (reader.pos < reader.len) {
    const tag = reader.uint32();
    if (tag === DELIMITED(2)) pairs.push(message(reader, reader.uint32(), emptyPair(), pairField));
    else reader.skipType(tag & 7);
  }
  return pairs;
}
