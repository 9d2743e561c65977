/**
 * Which relationships a permission's answer can depend on, read off the schema: the argument the
 * Watch-driven decision cache rests on (docs/inbound.md, "Why an invalidation is safe").
 *
 * A check `resource#permission@subject` walks the schema from the resource. Each relation it meets
 * is read in one of two ways:
 * - as a **member** set: is the subject in it, directly, through a wildcard, or through a subject
 *   set it holds (`group:eng#member`, which the walk follows to `group#member`);
 * - as a **tupleset** of an arrow (`parent->view`): every object it holds is visited.
 * And each read is **local** (on the checked resource itself: no arrow or subject set crossed yet)
 * or **remote** (on some other object the walk reached).
 *
 * Config load and schema change only; never on the request path.
 */
import { parseSchemaModel } from './schema-model.js';
import type { DefinitionModel, PermissionExpression, SchemaModel } from './schema-model.js';

/** How a permission reads one (type, relation); each flag is one way it may be read. */
export interface RelationRead {
  /** As a member set of the checked resource itself. */
  memberLocal: boolean;
  /** As a member set of an object reached through an arrow or a subject set. */
  memberRemote: boolean;
  /** As an arrow's tupleset on the checked resource itself. */
  tuplesetLocal: boolean;
  /** As an arrow's tupleset on an object reached through an arrow or a subject set. */
  tuplesetRemote: boolean;
}

export interface PermissionDependencies {
  /** `type#relation` to how the permission reads it; a relation not here cannot change the answer. */
  readonly reads: ReadonlyMap<string, Readonly<RelationRead>>;
  /** The object types of those relations: what a Watch must include. */
  readonly types: ReadonlySet<string>;
  /**
   * Some relation read admits `with expiration` subjects. SpiceDB's Watch sends no event when such
   * a relationship lapses, so an answer that may rest on one can only be kept for a short time.
   */
  readonly expiring: boolean;
}

/** `type#relation`: the key of RelationRead maps and of the changes matched against them. */
export function relationKey(type: string, relation: string): string {
  return `${type}#${relation}`;
}

class DependencyWalk {
  readonly reads = new Map<string, RelationRead>();
  readonly types = new Set<string>();
  expiring = false;
  readonly #visited = new Set<string>();

  constructor(private readonly model: SchemaModel) {}

  /** Reads `name` (a relation or a permission) of `type`; false if the schema lacks it. */
  visit(type: string, name: string, local: boolean): boolean {
    const definition = this.model.definitions.get(type);
    if (definition === undefined) return false;
    const visitKey = `${relationKey(type, name)} ${local ? 'local' : 'remote'}`;
    if (this.#visited.has(visitKey)) return true;
    this.#visited.add(visitKey);
    const expression = definition.permissions.get(name);
    if (expression !== undefined) return this.#expression(type, definition, expression, local);
    const subjects = definition.relations.get(name);
    if (subjects === undefined) return false;
    this.#read(type, name).memberLocal ||= local;
    this.#read(type, name).memberRemote ||= !local;
    for (const subject of subjects) {
      if (subject.expiring) this.expiring = true;
      // A subject set `group#member` makes every member of that set a member here.
      if (subject.relation !== undefined && !this.visit(subject.type, subject.relation, false)) return false;
    }
    return true;
  }

  #expression(type: string, definition: DefinitionModel, expression: PermissionExpression, local: boolean): boolean {
    switch (expression.kind) {
      case 'nil':
        return true;
      case 'reference':
        return this.visit(type, expression.name, local);
      case 'operation':
        return expression.operands.every((operand) => this.#expression(type, definition, operand, local));
      case 'arrow': {
        const subjects = definition.relations.get(expression.tupleset);
        if (subjects === undefined) return false;
        const read = this.#read(type, expression.tupleset);
        read.tuplesetLocal ||= local;
        read.tuplesetRemote ||= !local;
        for (const subject of subjects) {
          if (subject.expiring) this.expiring = true;
          // SpiceDB skips objects whose type lacks the target; so does the walk.
          const target = this.model.definitions.get(subject.type);
          if (target === undefined) return false;
          if ((target.permissions.has(expression.target) || target.relations.has(expression.target)) && !this.visit(subject.type, expression.target, false)) return false;
        }
        return true;
      }
    }
  }

  #read(type: string, relation: string): RelationRead {
    const key = relationKey(type, relation);
    let read = this.reads.get(key);
    if (read === undefined) {
      read = { memberLocal: false, memberRemote: false, tuplesetLocal: false, tuplesetRemote: false };
      this.reads.set(key, read);
      this.types.add(type);
    }
    return read;
  }
}

/** What `type#permission` can depend on, or undefined when the schema does not define it (then anything may matter). */
export function permissionDependencies(model: SchemaModel, type: string, permission: string): PermissionDependencies | undefined {
  const walk = new DependencyWalk(model);
  if (!walk.visit(type, permission, true)) return undefined;
  return { reads: walk.reads, types: walk.types, expiring: walk.expiring };
}

/**
 * The dependencies of every permission of one schema, worked out on first use. Before a schema is
 * loaded, or when it does not parse, every permission is unknown, so every change matters.
 */
export class SchemaDependencies {
  #model: SchemaModel | undefined;
  readonly #memo = new Map<string, PermissionDependencies | undefined>();

  /** Replaces the schema; returns the parse problem, if any (then everything is unknown). */
  load(schemaText: string): string | undefined {
    this.#memo.clear();
    const parsed = parseSchemaModel(schemaText, 'the schema SpiceDB serves');
    this.#model = parsed.ok ? parsed.value : undefined;
    return parsed.ok ? undefined : parsed.problem;
  }

  /** Dependencies of `type#permission` (relationKey), undefined when unknown. */
  of(permission: string): PermissionDependencies | undefined {
    if (this.#memo.has(permission)) return this.#memo.get(permission);
    const hash = permission.indexOf('#');
    const dependencies = this.#model && permissionDependencies(this.#model, permission.slice(0, hash), permission.slice(hash + 1));
    this.#memo.set(permission, dependencies);
    return dependencies;
  }
}
