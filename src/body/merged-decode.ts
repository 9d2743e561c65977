/**
 * Decodes a message as protobuf specifies when a singular embedded message arrives more than once:
 * the occurrences merge (later scalars win, repeated fields append, nested messages merge again),
 * as if their encodings were concatenated. protobufjs's generated decoder keeps only the last
 * occurrence, so a client that splits a message (as a proxy or a streaming encoder may) would be
 * checked on part of it: refused `body_field_missing` for a field the service does see.
 *
 * Only the message fields body paths walk through are looked at, and a message none of them is
 * split in (the usual case) is decoded once, after a scan of those fields' tags. Their bytes are
 * already checked (wire-check.ts), so the scan trusts the shape it reads.
 */
import protobuf from 'protobufjs';

const LENGTH_DELIMITED = 2;

function isSingularMessage(field: protobuf.Field): field is MessageField {
  return !field.repeated && !field.map && field.resolvedType instanceof protobuf.Type;
}

type MessageField = protobuf.Field & { resolvedType: protobuf.Type };

/** Each occurrence, in wire order, of a walked singular message field of `type` in `bytes`. */
function* walkedOccurrences(type: protobuf.Type, bytes: Uint8Array, walked: ReadonlySet<protobuf.Field>): Generator<readonly [MessageField, Uint8Array]> {
  const reader = protobuf.Reader.create(bytes);
  while (reader.pos < reader.len) {
    const tag = reader.uint32();
    const field = type.fieldsById[tag >>> 3];
    if (field !== undefined && (tag & 7) === LENGTH_DELIMITED && walked.has(field) && isSingularMessage(field)) {
      const length = reader.uint32();
      const start = reader.pos;
      reader.skip(length);
      yield [field, bytes.subarray(start, start + length)];
    } else {
      reader.skipType(tag & 7);
    }
  }
}

/**
 * Whether a walked message field arrives more than once, here or in a walked message below: the
 * common message needs no merge, and is decoded once, as before.
 */
function hasSplitField(type: protobuf.Type, bytes: Uint8Array, walked: ReadonlySet<protobuf.Field>): boolean {
  const seen = new Set<protobuf.Field>();
  for (const [field, part] of walkedOccurrences(type, bytes, walked)) {
    if (seen.has(field) || hasSplitField(field.resolvedType, part, walked)) return true;
    seen.add(field);
  }
  return false;
}

/** `walked`: the fields some body path walks through; only those are merged. */
export function decodeMerged(type: protobuf.Type, bytes: Uint8Array, walked: ReadonlySet<protobuf.Field>): protobuf.Message {
  return hasSplitField(type, bytes, walked) ? decodeMerging(type, bytes, walked) : type.decode(bytes);
}

function decodeMerging(type: protobuf.Type, bytes: Uint8Array, walked: ReadonlySet<protobuf.Field>): protobuf.Message {
  const message = type.decode(bytes);
  const occurrences = new Map<MessageField, Uint8Array[]>();
  for (const [field, part] of walkedOccurrences(type, bytes, walked)) {
    const parts = occurrences.get(field);
    if (parts === undefined) occurrences.set(field, [part]);
    else parts.push(part);
  }
  const fields = message as unknown as Record<string, unknown>;
  for (const [field, parts] of occurrences) {
    // Concatenated encodings are the merged message, and its own split fields merge in turn.
    const merged = parts.length === 1 ? (parts[0] as Uint8Array) : Buffer.concat(parts);
    fields[field.name] = decodeMerged(field.resolvedType, merged, walked);
  }
  return message;
}
