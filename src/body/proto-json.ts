/**
 * A message written in proto3's JSON mapping → the plain object protobufjs's `fromObject` takes.
 * grpcurl and other tools print a field under its JSON name (`orderId` for `order_id`, or the
 * `json_name` the .proto gives it); the descriptors here keep the .proto names. Both spellings are
 * accepted, and a name that is neither is refused rather than dropped: a dropped field would make
 * `check --message` explain a call the service never receives.
 */
import protobuf from 'protobufjs';

export class ProtoJsonError extends Error {}

/** lowerCamelCase, as protoc derives a field's default JSON name. */
function defaultJsonName(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_match, letter: string) => letter.toUpperCase());
}

function jsonNameOf(field: protobuf.Field): string {
  const explicit: unknown = field.options?.['json_name'];
  return typeof explicit === 'string' ? explicit : defaultJsonName(field.name);
}

function converted(field: protobuf.Field, value: unknown, where: string): unknown {
  const type = field.resolve().resolvedType;
  if (!(type instanceof protobuf.Type) || value === null || typeof value !== 'object') return value;
  if (field.map) {
    return Object.fromEntries(Object.entries(value).map(([key, entry]) => [key, fromProto3Json(type, entry, `${where}[${JSON.stringify(key)}]`)]));
  }
  if (Array.isArray(value)) return value.map((entry, i) => fromProto3Json(type, entry, `${where}[${i}]`));
  return fromProto3Json(type, value, where);
}

/** `where` names the message in errors (`--message`, then `--message.spec`, …). */
export function fromProto3Json(type: protobuf.Type, value: unknown, where: string): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new ProtoJsonError(`${where}: expected a JSON object for ${type.fullName.replace(/^\./, '')}`);
  const byName = new Map<string, protobuf.Field>();
  for (const field of type.fieldsArray) {
    byName.set(field.name, field);
    byName.set(jsonNameOf(field), field);
  }
  const out: Record<string, unknown> = {};
  for (const [key, entry] of Object.entries(value)) {
    const field = byName.get(key);
    if (field === undefined) throw new ProtoJsonError(`${where}: ${type.fullName.replace(/^\./, '')} has no field ${JSON.stringify(key)}`);
    if (Object.hasOwn(out, field.name)) throw new ProtoJsonError(`${where}: field ${field.name} is given twice (as ${field.name} and ${jsonNameOf(field)})`);
    out[field.name] = converted(field, entry, `${where}.${field.name}`);
  }
  return out;
}
