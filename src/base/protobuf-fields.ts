/**
 * What the lean protobuf readers share (the CheckRequest decoder in envoy/, the
 * CheckBulkPermissions codec in spicedb/): field tags, and reading one nested message field by
 * field with protobufjs's Reader, strictly: a message whose fields run past its declared length,
 * or past the bytes that hold it, is refused rather than read across its end.
 */
import protobuf from 'protobufjs';

type Reader = protobuf.Reader;

/** The tag of a varint field: its number, wire type 0. */
export const VARINT = (field: number): number => field << 3;
/** The tag of a 64-bit field: its number, wire type 1. */
export const FIXED64 = (field: number): number => (field << 3) | 1;
/** The tag of a length-delimited field (string, bytes, message, map entry): its number, wire type 2. */
export const DELIMITED = (field: number): number => (field << 3) | 2;

/** Reads one field of a message into `into`; false for a field it does not read (skipped). */
export type FieldReader<T> = (reader: Reader, tag: number, into: T) => boolean;

/**
 * Reads the fields of one message of `length` bytes at the reader's position with `field`.
 * `whole` names the bytes being decoded in the error (`request`, `response`).
 */
export function readMessage<T>(reader: Reader, length: number, into: T, field: FieldReader<T>, whole: string): T {
  const end = reader.pos + length;
  if (end > reader.len) throw new RangeError(`a nested message runs past the end of the ${whole}`);
  while (reader.pos < end) {
    const tag = reader.uint32();
    if (!field(reader, tag, into)) reader.skipType(tag & 7);
  }
  if (reader.pos !== end) throw new RangeError('a field runs past the end of its message');
  return into;
}
