/**
 * A strict pass over the protobuf wire bytes that body paths read, run before protobufjs decodes
 * them. protobufjs's generated decoder is fast but lenient where conformant parsers (Go, C++,
 * Java) are not, and a leniency is a parser differential: the sidecar would authorize one value
 * while the service acts on another. The decoder, for a known field:
 *   - never checks the wire type. `cloud_id` sent as a varint is read as a string by protobufjs and
 *     skipped as unknown by Go; an int field sent length-delimited makes protobufjs parse its
 *     payload as fields that Go skips, so `{cloud_id:"victim"}, 15:{cloud_id:"mine"}` reads "mine".
 *   - reads tags, lengths and 32-bit varints with a reader that assumes a varint longer than 5
 *     bytes is exactly 10 bytes long, so a padded 7-byte varint shifts everything after it.
 *   - lets a packed run's last element spill past the run's length.
 *   - decodes invalid UTF-8 in strings to U+FFFD, so two different byte strings read the same.
 * This pass refuses those shapes (no conformant encoder produces them) in the request message and
 * in each message a path walks through. Messages no path enters are length-delimited, so whatever
 * protobufjs makes of their insides cannot shift the fields that paths read.
 */
import protobuf from 'protobufjs';
import { isUtf8 } from 'node:buffer';

/** How the value of a field is laid out on the wire, and how protobufjs reads it. */
const Kind = {
  /** int32, uint32, sint32, enum: a varint read by protobufjs's 32-bit reader. */
  Narrow: 0,
  /** bool: the 32-bit reader, and only 0 or 1 (protobufjs and Go disagree on 2^32). */
  Bool: 1,
  /** int64, uint64, sint64: a varint of up to 10 bytes. */
  Wide: 2,
  Fixed32: 3,
  Fixed64: 4,
  /** string, bytes, messages, maps. */
  Delimited: 5,
  /** proto2 groups (and editions' DELIMITED messages): fields up to a matching end-group tag. */
  Group: 6,
} as const;
type Kind = (typeof Kind)[keyof typeof Kind];

const WIRE_TYPE: Readonly<Record<Kind, number>> = {
  [Kind.Narrow]: 0,
  [Kind.Bool]: 0,
  [Kind.Wide]: 0,
  [Kind.Fixed64]: 1,
  [Kind.Delimited]: 2,
  [Kind.Group]: 3,
  [Kind.Fixed32]: 5,
};

interface FieldRule {
  /** `Type.field`, for problem texts. */
  readonly label: string;
  /** Bit n set: wire type n is accepted. */
  readonly accepts: number;
  readonly kind: Kind;
  /** Repeated scalars may also arrive packed (wire type 2) as a run of this kind. */
  readonly packed: boolean;
  /** The message a body path walks into through this field. */
  readonly child: WirePlan | undefined;
  /** A string a body path renders: must be valid UTF-8. */
  readonly utf8: boolean;
}

export interface WirePlan {
  readonly typeName: string;
  readonly fields: ReadonlyMap<number, FieldRule>;
}

function kindOf(field: protobuf.Field): Kind {
  field.resolve();
  if (field.map) return Kind.Delimited;
  if (field.resolvedType instanceof protobuf.Type) return field.delimited ? Kind.Group : Kind.Delimited;
  if (field.resolvedType instanceof protobuf.Enum) return Kind.Narrow;
  switch (field.type) {
    case 'int32':
    case 'uint32':
    case 'sint32':
      return Kind.Narrow;
    case 'bool':
      return Kind.Bool;
    case 'int64':
    case 'uint64':
    case 'sint64':
      return Kind.Wide;
    case 'fixed32':
    case 'sfixed32':
    case 'float':
      return Kind.Fixed32;
    case 'fixed64':
    case 'sfixed64':
    case 'double':
      return Kind.Fixed64;
    default:
      return Kind.Delimited;
  }
}

/**
 * `chains` are the resolved fields of each body path, from the request type down. Every known
 * field of every message on a chain gets a rule; the chain's own fields get a child or UTF-8 check.
 * A group is not length-delimited, so protobufjs's reading of its fields decides where the
 * enclosing message resumes: groups get a full plan of their own (shared, since types can recurse).
 */
export function compileWirePlan(
  type: protobuf.Type,
  chains: readonly (readonly protobuf.Field[])[],
  groupPlans: Map<protobuf.Type, WirePlan> = new Map(),
): WirePlan {
  const fields = new Map<number, FieldRule>();
  const plan: WirePlan = { typeName: type.fullName.replace(/^\./, ''), fields };
  if (chains.length === 0) groupPlans.set(type, plan);
  const onPath = new Map<number, (readonly protobuf.Field[])[]>();
  const leaves = new Set<number>();
  for (const chain of chains) {
    const [head, ...rest] = chain;
    if (head === undefined) continue;
    if (rest.length === 0) {
      leaves.add(head.id);
    } else {
      const list = onPath.get(head.id) ?? [];
      list.push(rest);
      onPath.set(head.id, list);
    }
  }
  for (const field of type.fieldsArray) {
    const kind = kindOf(field);
    const packed = field.repeated && !field.map && kind !== Kind.Delimited && kind !== Kind.Group;
    const subChains = onPath.get(field.id);
    const childType = field.resolvedType;
    let child: WirePlan | undefined;
    if (childType instanceof protobuf.Type) {
      if (kind === Kind.Group) child = groupPlans.get(childType) ?? compileWirePlan(childType, [], groupPlans);
      else if (subChains !== undefined) child = compileWirePlan(childType, subChains, groupPlans);
    }
    fields.set(field.id, {
      label: `${plan.typeName}.${field.name}`,
      accepts: (1 << WIRE_TYPE[kind]) | (packed ? 1 << 2 : 0),
      kind,
      packed,
      child,
      utf8: leaves.has(field.id) && field.type === 'string',
    });
  }
  return plan;
}

const MAX_DEPTH = 100;
const NOT_A_GROUP = -1;

function label(field: string | number): string {
  return typeof field === 'number' ? `#${field}` : field;
}

function where(plan: WirePlan | undefined, group: number): string {
  return plan?.typeName ?? `group #${group}`;
}

/**
 * Walks one buffer; the first problem found stops the walk. Problem texts are built only on
 * failure: this runs on every request.
 */
class Scanner {
  pos = 0;
  problem: string | undefined = undefined;
  /** Length in bytes of the varint read last. */
  varintLength = 0;

  constructor(private readonly buf: Buffer) {}

  fail(problem: string): false {
    this.problem ??= problem;
    return false;
  }

  /** A varint as a double (exact below 2^53), or -1 when it is cut off or over 10 bytes. */
  varint(end: number): number {
    if (this.pos < end) {
      const first = this.buf[this.pos] ?? 0x80;
      if (first < 0x80) {
        this.pos++;
        this.varintLength = 1;
        return first;
      }
    }
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= end) break;
      const byte = this.buf[this.pos++] ?? 0;
      if (i === 9 && byte > 1) break;
      value += (byte & 0x7f) * scale;
      scale *= 128;
      if (byte < 0x80) {
        this.varintLength = i + 1;
        return value;
      }
    }
    return -1;
  }

  /** Tags and lengths: protobufjs reads them with its 32-bit reader, so at most 5 bytes; -1 if not. */
  shortVarint(end: number): number {
    const value = this.varint(end);
    return value < 0 || this.varintLength > 5 || value > 0xffffffff ? -1 : value;
  }

  skip(bytes: number, end: number, field: string | number): boolean {
    if (this.pos + bytes > end) return this.fail(`field ${label(field)} runs past the end of its message`);
    this.pos += bytes;
    return true;
  }

  scalar(kind: Kind, end: number, field: string): boolean {
    if (kind === Kind.Fixed32) return this.skip(4, end, field);
    if (kind === Kind.Fixed64) return this.skip(8, end, field);
    const value = this.varint(end);
    if (value < 0) return this.fail(`field ${field} holds an invalid varint`);
    if (kind === Kind.Wide) return true;
    // protobufjs reads 5 bytes and then skips exactly 5 more; any other length shifts the parse.
    if (this.varintLength > 5 && this.varintLength !== 10) return this.fail(`field ${field} holds an over-long varint`);
    if (kind === Kind.Bool && value > 1) return this.fail(`bool field ${field} holds neither 0 nor 1`);
    return true;
  }

  /** The value of a field no plan covers: skipped, but skipped exactly as a conformant parser would. */
  unknown(number: number, wireType: number, end: number, depth: number): boolean {
    switch (wireType) {
      case 0:
        return this.varint(end) >= 0 || this.fail(`field ${label(number)} holds an invalid varint`);
      case 1:
        return this.skip(8, end, number);
      case 2: {
        const length = this.shortVarint(end);
        if (length < 0) return this.fail(`the length of field ${label(number)} is not a valid varint`);
        return this.skip(length, end, number);
      }
      case 3:
        return this.fields(undefined, end, number, depth + 1);
      case 5:
        return this.skip(4, end, number);
      default:
        return this.fail(`field ${label(number)} has invalid wire type ${wireType}`);
    }
  }

  delimited(rule: FieldRule, end: number, depth: number): boolean {
    const length = this.shortVarint(end);
    if (length < 0) return this.fail(`the length of field ${rule.label} is not a valid varint`);
    const stop = this.pos + length;
    if (stop > end) return this.fail(`field ${rule.label} runs past the end of its message`);
    if (rule.packed) {
      while (this.pos < stop) {
        if (!this.scalar(rule.kind, stop, rule.label)) return false;
      }
    } else if (rule.child !== undefined) {
      if (!this.fields(rule.child, stop, NOT_A_GROUP, depth + 1)) return false;
    } else if (rule.utf8 && !this.utf8(stop)) {
      return this.fail(`string field ${rule.label} is not valid UTF-8`);
    }
    this.pos = stop;
    return true;
  }

  /** Most ids are ASCII: checked in place, without a subarray for the native check. */
  utf8(stop: number): boolean {
    for (let i = this.pos; i < stop; i++) {
      if ((this.buf[i] ?? 0) >= 0x80) return isUtf8(this.buf.subarray(i, stop));
    }
    return true;
  }

  /**
   * The fields of one message (plan given) or of an unknown group (plan undefined), up to `end`,
   * or for a group up to the end-group tag of field `group`.
   */
  fields(plan: WirePlan | undefined, end: number, group: number, depth: number): boolean {
    if (depth > MAX_DEPTH) return this.fail('messages or groups nest too deeply');
    while (this.pos < end) {
      const tag = this.shortVarint(end);
      if (tag < 0) return this.fail(`a tag in ${where(plan, group)} is not a valid varint`);
      const number = tag >>> 3;
      const wireType = tag & 7;
      if (number === 0) return this.fail(`${where(plan, group)} holds field number 0`);
      if (wireType === 4) {
        return number === group || this.fail(`${where(plan, group)} holds an end-group tag for field #${number}`);
      }
      const rule = plan?.fields.get(number);
      if (rule === undefined) {
        if (!this.unknown(number, wireType, end, depth)) return false;
        continue;
      }
      if ((rule.accepts & (1 << wireType)) === 0) {
        return this.fail(`field ${rule.label} arrived with wire type ${wireType}, not ${WIRE_TYPE[rule.kind]}`);
      }
      let ok: boolean;
      if (wireType === 2) ok = this.delimited(rule, end, depth);
      else if (rule.kind === Kind.Group) ok = this.fields(rule.child, end, number, depth + 1);
      else ok = this.scalar(rule.kind, end, rule.label);
      if (!ok) return false;
    }
    return group === NOT_A_GROUP || this.fail(`${where(plan, group)} is not closed`);
  }
}

/** Undefined when the bytes are safe to hand to protobufjs, else the problem (names fields, never values). */
export function checkWire(message: Buffer, plan: WirePlan): string | undefined {
  const scanner = new Scanner(message);
  return scanner.fields(plan, message.length, NOT_A_GROUP, 0) ? undefined : (scanner.problem ?? 'the message is not valid protobuf');
}
