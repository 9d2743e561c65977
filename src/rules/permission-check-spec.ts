/**
 * One SpiceDB check as written in config, and its compiled form. Shared by the inbound rules and
 * the outbound on-behalf-of checks, so both speak the same template language and validate the
 * rendered objects the same way before anything reaches SpiceDB.
 *
 *   resource:    "cloud:{path.cloud}"              object `type:id`
 *   permission:  "create_saga"                      permission or relation name
 *   subject:     "{subject_type}:{subject}"         default; may end in `#relation`
 *   consistency: minimize_latency | fully_consistent | { atLeastAsFresh: "{header.x-zedtoken}", ifMissing }
 *   context:     { caveat_param: "{claim.x}" | 42 | true }
 */
import { z } from 'zod';
import type { Consistency, ObjectRef, PermissionQuery } from '../core/ports.js';
import { failure, success } from '../core/result.js';
import type { Failure, Result } from '../core/result.js';
import { MAX_OBJECT_ID_BYTES, SPICEDB_OBJECT_ID } from '../core/subject-id.js';
import { compileTemplate, TemplateError } from './template.js';
import type { CompiledTemplate, TemplateRef, TemplateScope } from './template.js';

/** SpiceDB's validation patterns (authzed.api.v1 proto rules). */
export const SPICEDB_OBJECT_TYPE = /^([a-z][a-z0-9_]{1,61}[a-z0-9]\/)*[a-z][a-z0-9_]{1,62}[a-z0-9]$/;
const SPICEDB_RELATION = /^[a-z][a-z0-9_]{1,62}[a-z0-9]$/;
const CAVEAT_PARAM = /^[a-zA-Z_][a-zA-Z0-9_]{0,127}$/;
/** SpiceDB rejects request context over 4 KiB; stay under it with room for the Struct encoding. */
const MAX_CONTEXT_CHARS = 3584;
const MAX_ZEDTOKEN_CHARS = 1024;

const DEFAULT_SUBJECT_TEMPLATE = '{subject_type}:{subject}';

export const consistencyModeSchema = z.enum(['minimize_latency', 'fully_consistent']);

const consistencySpecSchema = z.union([
  consistencyModeSchema,
  z.strictObject({
    atLeastAsFresh: z.string().min(1).describe('template yielding a ZedToken, e.g. {header.x-spicedb-zedtoken}'),
    ifMissing: consistencyModeSchema.default('fully_consistent').describe('consistency when the request carries no ZedToken'),
  }),
]);

export const permissionCheckSpecSchema = z.strictObject({
  resource: z.string().min(1).describe('resource object template, `type:id`'),
  permission: z.string().min(1).describe('permission (or relation) name; may be a template'),
  subject: z.string().min(1).default(DEFAULT_SUBJECT_TEMPLATE).describe('subject object template, `type:id` or `type:id#relation`'),
  consistency: consistencySpecSchema.optional().describe('default: the rule set default, else minimize_latency'),
  context: z
    .record(z.string(), z.union([z.string(), z.number(), z.boolean()]))
    .optional()
    .describe('caveat context; string values are templates'),
});

export type PermissionCheckSpec = z.infer<typeof permissionCheckSpecSchema>;
type ConsistencySpec = z.infer<typeof consistencySpecSchema>;


export interface CompiledPermissionCheck {
  readonly where: string;
  readonly spec: PermissionCheckSpec;
  /** True when the check's consistency is pinned by the spec (it ignores the caller's default). */
  readonly hasOwnConsistency: boolean;
  /** Every value the check's templates read, so callers can verify e.g. that path params exist. */
  readonly references: readonly TemplateRef[];
  /** Fails with invalid_check_input when a value is missing or renders into something SpiceDB would reject. */
  build(scope: TemplateScope, defaultConsistency: Consistency): Result<PermissionQuery>;
}

export const MINIMIZE_LATENCY: Consistency = Object.freeze({ kind: 'minimize_latency' });
export const FULLY_CONSISTENT: Consistency = Object.freeze({ kind: 'fully_consistent' });

/** `type:id` / `type:id#relation`, as shown in decision facts and logs. */
export function formatObject(ref: ObjectRef & { readonly relation?: string }): string {
  return ref.relation ? `${ref.type}:${ref.id}#${ref.relation}` : `${ref.type}:${ref.id}`;
}

function modeConsistency(mode: z.infer<typeof consistencyModeSchema>): Consistency {
  return mode === 'fully_consistent' ? FULLY_CONSISTENT : MINIMIZE_LATENCY;
}

/** A consistency, or the text of why none can be chosen. */
type ConsistencyResolver = (scope: TemplateScope, fallback: Consistency) => Consistency | string;

function compileConsistency(spec: ConsistencySpec | undefined, where: string): ConsistencyResolver {
  if (spec === undefined) return (_scope, fallback) => fallback;
  if (typeof spec === 'string') {
    const fixed = modeConsistency(spec);
    return () => fixed;
  }
  const token = compileTemplate(spec.atLeastAsFresh, `${where}.consistency.atLeastAsFresh`);
  const missing = modeConsistency(spec.ifMissing);
  return (scope) => {
    const zedToken = token.render(scope);
    if (zedToken === undefined) return missing;
    if (zedToken.length > MAX_ZEDTOKEN_CHARS) return 'ZedToken too long';
    return { kind: 'at_least_as_fresh', zedToken };
  };
}

/** Validates the literal parts of an object template at load, so a typo fails start-up, not requests. */
function checkStaticObject(template: CompiledTemplate, where: string, allowRelation: boolean): void {
  const source = template.source;
  const colon = source.indexOf(':');
  const brace = source.indexOf('{');
  if (colon < 0 && brace < 0) throw new TemplateError(where, `"${source}" is not an object reference (expected type:id)`);
  if (colon >= 0 && (brace < 0 || colon < brace)) {
    const type = source.slice(0, colon);
    if (!SPICEDB_OBJECT_TYPE.test(type)) throw new TemplateError(where, `"${type}" is not a valid SpiceDB object type`);
  }
  if (template.literal !== undefined) {
    const parsed = parseObject(template.literal, allowRelation);
    if (typeof parsed === 'string') throw new TemplateError(where, parsed);
  }
}

/** Splits and validates a rendered `type:id[#relation]`; a string result is the error. */
function parseObject(text: string, allowRelation: boolean): (ObjectRef & { relation?: string }) | string {
  const colon = text.indexOf(':');
  if (colon < 0) return `"${text}" is not type:id`;
  const type = text.slice(0, colon);
  let id = text.slice(colon + 1);
  let relation: string | undefined;
  const hash = id.indexOf('#');
  if (hash >= 0) {
    if (!allowRelation) return 'a resource cannot carry a #relation';
    relation = id.slice(hash + 1);
    id = id.slice(0, hash);
    if (!SPICEDB_RELATION.test(relation)) return `invalid relation "${relation}"`;
  }
  if (!SPICEDB_OBJECT_TYPE.test(type)) return `invalid object type "${type}"`;
  // `*` is SpiceDB's wildcard; a value rendered from request input must never turn into "anyone".
  if (id === '*') return `object id for ${type} is the wildcard "*", which checks never use`;
  if (id.length > MAX_OBJECT_ID_BYTES || !SPICEDB_OBJECT_ID.test(id)) {
    return `object id for ${type} is not a valid SpiceDB id (use {subject} or |id to escape)`;
  }
  return relation === undefined ? { type, id } : { type, id, relation };
}

function unbuildable(where: string, problem: string): Failure {
  return failure('invalid_check_input', `${where}: ${problem}`);
}

type ContextEntry = readonly [key: string, value: CompiledTemplate | number | boolean];

export function compilePermissionCheck(spec: PermissionCheckSpec, where: string): CompiledPermissionCheck {
  const resource = compileTemplate(spec.resource, `${where}.resource`);
  checkStaticObject(resource, `${where}.resource`, false);
  const subject = compileTemplate(spec.subject, `${where}.subject`);
  checkStaticObject(subject, `${where}.subject`, true);
  const permission = compileTemplate(spec.permission, `${where}.permission`);
  if (permission.literal !== undefined && !SPICEDB_RELATION.test(permission.literal)) {
    throw new TemplateError(`${where}.permission`, `"${permission.literal}" is not a valid SpiceDB permission name`);
  }
  const consistency = compileConsistency(spec.consistency, where);
  const context: ContextEntry[] = [];
  const references: TemplateRef[] = [...resource.references, ...subject.references, ...permission.references];
  for (const [key, value] of Object.entries(spec.context ?? {})) {
    if (!CAVEAT_PARAM.test(key)) throw new TemplateError(`${where}.context`, `"${key}" is not a valid caveat parameter name`);
    const compiled = typeof value === 'string' ? compileTemplate(value, `${where}.context.${key}`) : value;
    if (typeof compiled === 'object') references.push(...compiled.references);
    context.push([key, compiled]);
  }
  if (typeof spec.consistency === 'object') references.push(...compileTemplate(spec.consistency.atLeastAsFresh, where).references);

  return {
    where,
    spec,
    hasOwnConsistency: spec.consistency !== undefined,
    references,
    build(scope, defaultConsistency) {
      const resourceText = resource.render(scope);
      if (resourceText === undefined) return unbuildable(where, `resource "${spec.resource}" references a missing value`);
      const resourceRef = parseObject(resourceText, false);
      if (typeof resourceRef === 'string') return unbuildable(where, `resource ${resourceRef}`);
      const subjectText = subject.render(scope);
      if (subjectText === undefined) return unbuildable(where, `subject "${spec.subject}" references a missing value`);
      const subjectRef = parseObject(subjectText, true);
      if (typeof subjectRef === 'string') return unbuildable(where, `subject ${subjectRef}`);
      const permissionText = permission.render(scope);
      if (permissionText === undefined || !SPICEDB_RELATION.test(permissionText)) return unbuildable(where, 'permission is missing or invalid');
      const chosen = consistency(scope, defaultConsistency);
      if (typeof chosen === 'string') return unbuildable(where, chosen);
      if (context.length === 0) {
        return success({ resource: resourceRef, permission: permissionText, subject: subjectRef, consistency: chosen });
      }
      const values: Record<string, string | number | boolean> = {};
      let size = 0;
      for (const [key, value] of context) {
        if (typeof value === 'object') {
          const text = value.render(scope);
          if (text === undefined) return unbuildable(where, `caveat context "${key}" references a missing value`);
          values[key] = text;
          size += key.length + text.length + 8;
        } else {
          values[key] = value;
          size += key.length + 24;
        }
      }
      if (size > MAX_CONTEXT_CHARS) return unbuildable(where, `caveat context too large`);
      return success({ resource: resourceRef, permission: permissionText, subject: subjectRef, consistency: chosen, context: values });
    },
  };
}
