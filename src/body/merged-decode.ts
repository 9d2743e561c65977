/**
 * Decodes a message as protobuf specifies when a singular embedded message arrives more than once:
 * the occurrences merge (later scalars win, repeated fields append, nested messages merge again),
 * as if their encodings were concatenated. protobufjs's generated decoder keeps only the last
 * occurrence, so a client that splits a message (as a proxy or a streaming encoder may) would be
 * checked on part of it: refused `body_field_missing` for a field the service does see.
 *
 * Only the message fields body paths walk through are re-read, so a rule pays for what it reads.
 * Their bytes are already checked (wire-check.ts), so this walk trusts the shape it reads.
 */
import protobuf from 'protobufjs';

const LENGTH_DELIMITED = 2;

function isSingularMessage(field: protobuf.Field): field is protobuf.Field & { resolvedType: protobuf.Type } {
  return !field.repeated && !field.map && field.resolvedType instanceof protobuf.Type;
}

/** `walked`: the fields some body path walks through; only those are merged. */
export function decodeMerged(type: protobuf.Type, bytes: Uint8Array, walked: ReadonlySet<protobuf.Field>): protobuf.Message {
  const message = type.decode(bytes);
  let occurrences: Map<protobuf.Field & { resolvedType: protobuf.Type }, Uint8Array[]> | undefined;
  const reader = protobuf.Reader.create(bytes);
  while (reader.pos < reader.len) {
    const tag = reader.uint32();
    const field = type.fieldsById[tag >>> 3];
    if (field !== undefined && (tag & 7) === LENGTH_DELIMITED && walked.has(field) && isSingularMessage(field)) {
      const length = reader.uint32();
      const start = reader.pos;
      reader.skip(length);
      occurrences ??= new Map();
      const parts = occurrences.get(field);
      if (parts === undefined) occurrences.set(field, [bytes.subarray(start, start + length)]);
      else parts.push(bytes.subarray(start, start + length));
    } else {
      reader.skipType(tag & 7);
    }
  }
  if (occurrences === undefined) return message;
  const fields = message as unknown as Record<string, unknown>;
  for (const [field, parts] of occurrences) {
    // Concatenated encodings are the merged message, and its own split fields merge in turn.
    const merged = parts.length === 1 ? (parts[0] as Uint8Array) : Buffer.concat(parts);
    fields[field.name] = decodeMerged(field.resolvedType, merged, walked);
  }
  return message;
}
