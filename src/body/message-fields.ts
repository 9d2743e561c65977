/**
 * Body paths over a protobuf message (`spec.cloud.id`): resolved against the descriptors once, at
 * load, into field chains and one renderer per path; per request, a walk of own properties on the
 * message protobufjs decoded.
 *
 * Presence follows the wire, not protobufjs's defaults (which sit on the prototype): a field is
 * set only if it arrived. A field without explicit presence (a plain proto3 scalar) that holds its
 * default (0, false, the first enum value) counts as absent whether or not the sender wrote it,
 * because conformant encoders never do: otherwise the same request would be allowed from one
 * client library and refused from another. Empty strings are absent everywhere.
 */
import protobuf from 'protobufjs';
import { didYouMean } from '../base/closest-name.js';
import { BodyConfigError, refuse } from './contract.js';
import type { BodyRead } from './contract.js';

type Render = (value: unknown) => string | undefined;

interface Step {
  readonly name: string;
  /** The other members of this field's oneof: with two set, which one the service sees is a guess. */
  readonly rivals: readonly string[];
  readonly absent: BodyRead;
  readonly ambiguous: BodyRead;
}

interface CompiledPath {
  readonly path: string;
  readonly steps: readonly Step[];
  readonly render: Render;
  readonly unusable: BodyRead;
}

export interface MessagePaths {
  /** The resolved fields of each path, request type first (for the wire check). */
  readonly chains: readonly (readonly protobuf.Field[])[];
  extract(message: protobuf.Message): BodyRead;
}

interface LongLike {
  readonly low: number;
  readonly high: number;
}

function isLongLike(value: unknown): value is LongLike {
  return typeof value === 'object' && value !== null && typeof (value as LongLike).low === 'number' && typeof (value as LongLike).high === 'number';
}

function render64(signed: boolean, implicit: boolean): Render {
  return (value) => {
    if (isLongLike(value)) {
      if (implicit && value.low === 0 && value.high === 0) return undefined;
      const bits = (BigInt(value.high >>> 0) << 32n) | BigInt(value.low >>> 0);
      return (signed ? BigInt.asIntN(64, bits) : bits).toString();
    }
    // Without the long package protobufjs hands out doubles; only those below 2^53 are exact.
    if (typeof value === 'number' && Number.isSafeInteger(value) && !(implicit && value === 0)) return String(value);
    return undefined;
  };
}

function renderNumber(implicit: boolean, integer: boolean): Render {
  return (value) => {
    if (typeof value !== 'number' || !Number.isFinite(value) || (integer && !Number.isInteger(value))) return undefined;
    return implicit && value === 0 ? undefined : String(value);
  };
}

function renderEnum(type: protobuf.Enum, implicit: boolean): Render {
  const names = new Map<number, string>();
  for (const [id, name] of Object.entries(type.valuesById)) names.set(Number(id), name);
  return (value) => (typeof value !== 'number' || (implicit && value === 0) ? undefined : names.get(value));
}

const renderString: Render = (value) => (typeof value === 'string' && value !== '' ? value : undefined);

const SIGNED_64 = new Set(['int64', 'sint64', 'sfixed64']);
const UNSIGNED_64 = new Set(['uint64', 'fixed64']);
const INTEGER_32 = new Set(['int32', 'uint32', 'sint32', 'fixed32', 'sfixed32']);

/** The renderer for a leaf field, or a reason it cannot be one. */
function leafRenderer(field: protobuf.Field): Render | string {
  const implicit = !field.hasPresence;
  const resolved = field.resolvedType;
  if (resolved instanceof protobuf.Type) {
    const names = resolved.fieldsArray.map((f) => f.name);
    return `is a message (${resolved.fullName.replace(/^\./, '')}); name one of its fields${names.length > 0 ? ` (${names.join(', ')})` : ''}`;
  }
  if (resolved instanceof protobuf.Enum) return renderEnum(resolved, implicit);
  if (field.type === 'string') return renderString;
  if (field.type === 'bytes') return 'is bytes; bytes cannot be rendered into a check';
  if (field.type === 'bool') return (value) => (value === true ? 'true' : value === false && !implicit ? 'false' : undefined);
  if (SIGNED_64.has(field.type) || UNSIGNED_64.has(field.type)) {
    if (!protobuf.util.Long) return 'is a 64-bit integer, and protobufjs has no Long support here to read it exactly';
    return render64(SIGNED_64.has(field.type), implicit);
  }
  if (INTEGER_32.has(field.type)) return renderNumber(implicit, true);
  if (field.type === 'double' || field.type === 'float') return renderNumber(implicit, false);
  return `has type ${field.type}, which body paths cannot render`;
}

function unusableDetail(path: string, field: protobuf.Field): string {
  if (field.resolvedType instanceof protobuf.Enum) {
    return `body field "${path}" is unset, holds the default, or holds an enum number the descriptors do not name`;
  }
  if (field.type === 'string') return `body field "${path}" is empty`;
  return field.hasPresence ? `body field "${path}" holds no usable value` : `body field "${path}" is unset or holds the default value`;
}

/** Field names are the .proto's; a descriptor loaded with camelCase names will not match them. */
function fieldNamed(type: protobuf.Type, name: string): protobuf.Field | undefined {
  const fields = type.fields;
  return Object.hasOwn(fields, name) ? fields[name] : undefined;
}

function compilePath(type: protobuf.Type, path: string, context: string): { compiled: CompiledPath; chain: protobuf.Field[] } {
  const problem = (text: string) => new BodyConfigError(`${context}: ${text}`);
  const segments = path.split('.');
  if (segments.some((segment) => segment === '')) throw problem('has an empty segment');
  const steps: Step[] = [];
  const chain: protobuf.Field[] = [];
  let current = type;
  for (const [i, name] of segments.entries()) {
    const walked = segments.slice(0, i + 1).join('.');
    const field = fieldNamed(current, name);
    if (field === undefined) {
      const owner = current.fullName.replace(/^\./, '');
      throw problem(`message ${owner} has no field "${name}"${didYouMean(name, current.fieldsArray.map((f) => f.name))}`);
    }
    field.resolve();
    if (field.map) throw problem(`field "${walked}" is a map; a body path needs a single value`);
    if (field.repeated) throw problem(`field "${walked}" is repeated; a body path needs a single value`);
    const oneof = field.partOf;
    const rivals = oneof === null ? [] : oneof.oneof.filter((member) => member !== name);
    const last = i === segments.length - 1;
    steps.push({
      name,
      rivals,
      absent: refuse('body_field_missing', last ? `body field "${path}" is not set` : `body field "${path}" is absent ("${walked}" is not set)`),
      ambiguous: refuse(
        'body_malformed',
        `oneof ${oneof?.name ?? ''} holds several members (${[name, ...rivals].join(', ')}) where body field "${path}" is read; which one the service uses is not knowable from the decoded message`,
      ),
    });
    chain.push(field);
    if (last) {
      const render = leafRenderer(field);
      if (typeof render === 'string') throw problem(`field "${walked}" ${render}`);
      return { compiled: { path, steps, render, unusable: refuse('body_field_missing', unusableDetail(path, field)) }, chain };
    }
    const next = field.resolvedType;
    if (!(next instanceof protobuf.Type)) throw problem(`field "${walked}" is a ${field.type}, not a message, so "${path}" cannot go inside it`);
    if (field.delimited) throw problem(`field "${walked}" is a group; body paths do not walk into groups`);
    current = next;
  }
  throw problem('has an empty segment');
}

/** `context(path)` prefixes every error, e.g. `rules[2].checks[0]: body path "x" (request type T of S/M)`. */
export function compileMessagePaths(type: protobuf.Type, paths: readonly string[], context: (path: string) => string): MessagePaths {
  const compiled: CompiledPath[] = [];
  const chains: protobuf.Field[][] = [];
  for (const path of paths) {
    const { compiled: one, chain } = compilePath(type, path, context(path));
    compiled.push(one);
    chains.push(chain);
  }
  return {
    chains,
    extract(message) {
      const values = new Map<string, string>();
      for (const path of compiled) {
        let current: unknown = message;
        for (const step of path.steps) {
          const holder = current as Record<string, unknown>;
          if (!Object.hasOwn(holder, step.name)) return step.absent;
          for (const rival of step.rivals) {
            if (Object.hasOwn(holder, rival) && holder[rival] != null) return step.ambiguous;
          }
          current = holder[step.name];
          if (current === null || current === undefined) return step.absent;
        }
        const text = path.render(current);
        if (text === undefined) return path.unusable;
        values.set(path.path, text);
      }
      return { ok: true, value: values };
    },
  };
}
