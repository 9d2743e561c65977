/**
 * A SpiceDB schema reduced to the names configuration may refer to: each definition's relations
 * (with the subject types they accept) and permissions, and each caveat's parameters. Parsed with
 * Authzed's own schema parser, so what the sidecar thinks the schema says is what the playground
 * and editor tooling think it says. Config load only; never on the request path.
 */
import { createRequire } from 'node:module';
// Types only: the package's ESM build imports named exports from CommonJS `parsimmon`, which Node's
// ESM loader refuses, so the value comes from its CommonJS entry below. The types are taken from the
// CommonJS declarations to match.
import type { ParsedSchema, TypeRef, parse as parseFunction } from '@authzed/spicedb-parser-js' with { 'resolution-mode': 'require' };
import type { Loaded } from '../core/result.js';

const parser = createRequire(import.meta.url)('@authzed/spicedb-parser-js') as { readonly parse: typeof parseFunction };

/** One entry of a relation's allowed types: `user`, `user:*`, `group#member`, each maybe `with caveat` or `with expiration`. */
interface AllowedSubject {
  readonly type: string;
  /** `member` in `group#member`. */
  readonly relation?: string;
  /** `user:*`: every object of the type. */
  readonly wildcard: boolean;
  readonly caveat?: string;
  /** `with expiration`: such relationships lapse without a Watch event. */
  readonly expiring: boolean;
}

/**
 * A permission's expression, reduced to what decides which relationships it reads: the set
 * operator (union, intersection, exclusion) does not change that, so operands are just listed.
 */
export type PermissionExpression =
  | { readonly kind: 'reference'; readonly name: string }
  /** `tupleset->target`, and the named arrows `tupleset.any(target)` / `tupleset.all(target)`. */
  | { readonly kind: 'arrow'; readonly tupleset: string; readonly target: string }
  | { readonly kind: 'operation'; readonly operands: readonly PermissionExpression[] }
  | { readonly kind: 'nil' };

export interface DefinitionModel {
  readonly relations: ReadonlyMap<string, readonly AllowedSubject[]>;
  readonly permissions: ReadonlyMap<string, PermissionExpression>;
}

interface CaveatModel {
  /** Parameter name to its type as written, e.g. `region` to `string`, `tags` to `list<string>`. */
  readonly parameters: ReadonlyMap<string, string>;
}

export interface SchemaModel {
  readonly definitions: ReadonlyMap<string, DefinitionModel>;
  readonly caveats: ReadonlyMap<string, CaveatModel>;
}

export type SchemaModelResult = Loaded<SchemaModel>;

type TopLevel = ParsedSchema['definitions'][number];
type ParsedExpression = ObjectLike['permissions'][number]['expr'];
type ObjectLike = Extract<TopLevel, { kind: 'objectDef' | 'partial' }>;
type CaveatParameterType = Extract<TopLevel, { kind: 'caveatDef' }>['parameters'][number]['type'];

/** Keeps the parser's "expected" list from turning into a page of regular expressions. */
const COMMENT_PATTERNS = new Set(['/\\/\\/.*/', '/\\/\\*((((?!\\*\\/).)|\\r|\\n)*)\\*\\//']);
const TYPE_PATH_PATTERN = '/([a-zA-Z_][0-9a-zA-Z_+-]*\\/)*[a-zA-Z_][0-9a-zA-Z_+-]*/';
const IDENTIFIER_PATTERN = '/[a-zA-Z_][0-9a-zA-Z_+]*/';
const MAX_EXPECTATIONS = 6;

function describeExpectation(expected: string, precedingWord: string): string | undefined {
  if (COMMENT_PATTERNS.has(expected)) return undefined;
  if (expected === 'EOF') return 'the end of the schema';
  if (expected === TYPE_PATH_PATTERN) return precedingWord === 'caveat' || precedingWord === 'with' ? 'a caveat name' : 'a type name';
  if (expected === IDENTIFIER_PATTERN) {
    if (precedingWord === 'relation' || precedingWord === 'permission') return `a ${precedingWord} name`;
    return 'a name';
  }
  // The remaining patterns are the literals of caveat expressions (numbers, strings).
  if (expected.startsWith('/')) return 'a value';
  if (expected.startsWith("'") && expected.endsWith("'")) return `"${expected.slice(1, -1)}"`;
  return expected;
}

function listExpectations(descriptions: readonly string[]): string {
  if (descriptions.length === 0) return 'something else';
  // Inside a caveat expression the parser lists every token a CEL operand may start with.
  if (descriptions.includes('a value')) return 'a value';
  if (descriptions.length > MAX_EXPECTATIONS) return `${descriptions.slice(0, MAX_EXPECTATIONS).join(', ')}, ...`;
  return descriptions.length === 1 ? descriptions[0]! : `${descriptions.slice(0, -1).join(', ')} or ${descriptions.at(-1)!}`;
}

function whatWasFound(text: string, offset: number): string {
  const token = /^(\w+|\S)/.exec(text.slice(offset).trimStart());
  return token ? `"${token[0]}"` : 'the end of the schema';
}

function describeParseError(text: string, origin: string, error: { index: { offset: number; line: number; column: number }; expected: readonly string[] }): string {
  const { offset, line, column } = error.index;
  const precedingWord = /([A-Za-z_]\w*)\s*$/.exec(text.slice(0, offset))?.[1] ?? '';
  const descriptions = [...new Set(error.expected.map((e) => describeExpectation(e, precedingWord)).filter((d) => d !== undefined))];
  return `${origin} line ${line}, column ${column}: expected ${listExpectations(descriptions)}; found ${whatWasFound(text, offset)}`;
}

function caveatTypeText(type: CaveatParameterType): string {
  return type.generics.length === 0 ? type.name : `${type.name}<${type.generics.map(caveatTypeText).join(', ')}>`;
}

/** The expiration trait's name: the parser (1.2.0) reads `with expiration` as a caveat of this name. */
const EXPIRATION_TRAIT = 'expiration';

/**
 * Whether `ref` admits `with expiration`. The parser's output differs from its declared types: the
 * trait comes as a caveat named `expiration`, or, after `with caveat and expiration`, as a
 * `withExpiration` list on the caveat.
 */
function isExpiring(ref: TypeRef): boolean {
  const caveat = ref.withCaveat as (TypeRef['withCaveat'] & { readonly withExpiration?: readonly unknown[] }) | undefined;
  return ref.withExpiration !== undefined || caveat?.path === EXPIRATION_TRAIT || (caveat?.withExpiration?.length ?? 0) > 0;
}

function allowedSubject(ref: TypeRef): AllowedSubject {
  const caveat = ref.withCaveat?.path;
  return {
    type: ref.path,
    wildcard: ref.wildcard,
    ...(ref.relationName === undefined ? {} : { relation: ref.relationName }),
    ...(caveat === undefined || caveat === EXPIRATION_TRAIT ? {} : { caveat }),
    expiring: isExpiring(ref),
  };
}

function expressionOf(parsed: ParsedExpression): PermissionExpression {
  switch (parsed.kind) {
    case 'relationref':
      return { kind: 'reference', name: parsed.relationName };
    case 'arrow':
    case 'namedarrow':
      return { kind: 'arrow', tupleset: parsed.sourceRelation.relationName, target: parsed.targetRelationOrPermission };
    case 'binary':
      return { kind: 'operation', operands: [expressionOf(parsed.left), expressionOf(parsed.right)] };
    case 'nil':
      return { kind: 'nil' };
  }
}

function at(origin: string, item: { range: { startIndex: { line: number; column: number } } }): string {
  return `${origin} line ${item.range.startIndex.line}, column ${item.range.startIndex.column}`;
}

/**
 * A definition's relations and permissions, its `...partial` references included. A missing or
 * circular partial is an error: SpiceDB would refuse the schema, and guessing would hide names.
 */
function definitionModel(definition: ObjectLike, partials: ReadonlyMap<string, ObjectLike>, origin: string, including: readonly string[] = []): DefinitionModel | string {
  const relations = new Map<string, readonly AllowedSubject[]>();
  const permissions = new Map<string, PermissionExpression>();
  for (const reference of definition.partialReferences) {
    const partial = partials.get(reference.name);
    if (partial === undefined) return `${at(origin, reference)}: "${definition.name}" uses partial "${reference.name}", which the schema does not define`;
    if (including.includes(reference.name)) return `${at(origin, reference)}: partial "${reference.name}" includes itself`;
    const included = definitionModel(partial, partials, origin, [...including, reference.name]);
    if (typeof included === 'string') return included;
    for (const [name, subjects] of included.relations) relations.set(name, subjects);
    for (const [name, expression] of included.permissions) permissions.set(name, expression);
  }
  for (const relation of definition.relations) relations.set(relation.name, relation.allowedTypes.types.map(allowedSubject));
  for (const permission of definition.permissions) permissions.set(permission.name, expressionOf(permission.expr));
  return { relations, permissions };
}

function modelOf(schema: ParsedSchema, origin: string): SchemaModelResult {
  const partials = new Map<string, ObjectLike>();
  for (const item of schema.definitions) if (item.kind === 'partial') partials.set(item.name, item);
  const definitions = new Map<string, DefinitionModel>();
  const caveats = new Map<string, CaveatModel>();
  for (const item of schema.definitions) {
    switch (item.kind) {
      case 'objectDef': {
        const model = definitionModel(item, partials, origin);
        if (typeof model === 'string') return { ok: false, problem: model };
        definitions.set(item.name, model);
        break;
      }
      case 'caveatDef':
        caveats.set(item.name, { parameters: new Map(item.parameters.map((parameter) => [parameter.name, caveatTypeText(parameter.type)])) });
        break;
      case 'import':
        // The imported file's names would be missing from the model and reported as unknown.
        return { ok: false, problem: `${at(origin, item)}: import "${item.path}" is not supported here; compile the schema into one file first (zed preview schema compile)` };
      case 'partial':
      case 'use':
        break;
    }
  }
  return { ok: true, value: { definitions, caveats } };
}

/** Parses schema text; `origin` (a file name, or where the text was read from) prefixes any problem. */
export function parseSchemaModel(text: string, origin: string): SchemaModelResult {
  let result: ReturnType<typeof parseFunction>;
  try {
    result = parser.parse(text);
  } catch (error) {
    return { ok: false, problem: `${origin}: the schema parser failed: ${error instanceof Error ? error.message : String(error)}` };
  }
  if (result.error !== undefined) return { ok: false, problem: describeParseError(text, origin, result.error) };
  if (result.schema === undefined) return { ok: false, problem: `${origin}: the schema parser returned nothing` };
  return modelOf(result.schema, origin);
}
