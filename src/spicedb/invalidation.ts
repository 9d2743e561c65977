/**
 * Which cached answers a relationship change could affect: the rule (`affects`) and an index that
 * finds the candidates without scanning the cache. The argument, in docs/inbound.md ("Why an
 * invalidation is safe"), in short: a check asks whether its subject is in a set the schema builds
 * from relationships. A relationship whose subject is a plain object S adds S alone to its set, so
 * it can change the answer for S and for no other subject, even on the changed resource, except
 * where the walk visits the objects of that set (an arrow's tupleset), or the check's subject is
 * itself a set.
 */
import type { PermissionQuery } from '../core/ports.js';
import type { RelationshipChange } from './change-feed.js';
import { relationKey } from './permission-dependencies.js';
import type { PermissionDependencies, RelationRead } from './permission-dependencies.js';

/** What a cached answer is about, in the terms a change is matched on. */
export interface CachedDecision {
  readonly key: string;
  /** `type#permission` of the resource. */
  readonly permission: string;
  /** `type:id`. */
  readonly resource: string;
  /** `type:id`, without a relation. */
  readonly subject: string;
  readonly subjectType: string;
  /** The subject is a set (`group:eng#member`): membership of anyone in it may change. */
  readonly subjectIsSet: boolean;
}

export function cachedDecision(key: string, query: PermissionQuery): CachedDecision {
  const { resource, subject } = query;
  return {
    key,
    permission: relationKey(resource.type, query.permission),
    resource: `${resource.type}:${resource.id}`,
    subject: `${subject.type}:${subject.id}`,
    subjectType: subject.type,
    subjectIsSet: subject.relation !== undefined && subject.relation !== '',
  };
}

/** Dependencies of a `type#permission`, or undefined when unknown (then every change may matter). */
export type DependencyLookup = (permission: string) => PermissionDependencies | undefined;

function changedResource(change: RelationshipChange): string {
  return `${change.resourceType}:${change.resourceId}`;
}

/** The read a dependent answer makes of the changed relation, if any; `true` when unknown. */
function readOf(change: RelationshipChange, dependencies: PermissionDependencies | undefined): Readonly<RelationRead> | true | undefined {
  return dependencies === undefined ? true : dependencies.reads.get(relationKey(change.resourceType, change.relation));
}

/** Whether `change` could change the cached answer `decision`. Errs on the side of true. */
export function affects(change: RelationshipChange, decision: CachedDecision, lookup: DependencyLookup): boolean {
  const read = readOf(change, lookup(decision.permission));
  if (read === undefined) return false;
  if (read === true) return true;
  const sameResource = decision.resource === changedResource(change);
  // Every object of a tupleset is visited: a change there can reach any answer that walks through it.
  if (read.tuplesetRemote || (sameResource && read.tuplesetLocal)) return true;
  // Otherwise the changed relation matters only as a member set: of this resource, or of one reached from it.
  if (!read.memberRemote && !(sameResource && read.memberLocal)) return false;
  // A subject set brings all its members; a subject that is a set may hold the changed subject.
  if (change.subjectRelation !== '' || decision.subjectIsSet) return true;
  if (change.subjectId === '*') return decision.subjectType === change.subjectType;
  // A plain object joins or leaves the set alone: only its own answers can change.
  return decision.subject === `${change.subjectType}:${change.subjectId}`;
}

function addTo<K, V>(map: Map<K, Set<V>>, key: K, value: V): void {
  let set = map.get(key);
  if (set === undefined) map.set(key, (set = new Set()));
  set.add(value);
}

function removeFrom<K, V>(map: Map<K, Set<V>>, key: K, value: V): void {
  const set = map.get(key);
  if (set === undefined) return;
  set.delete(value);
  if (set.size === 0) map.delete(key);
}

/**
 * The cached answers by resource, subject and permission, so a change finds its candidates in a
 * few lookups; `affects` then decides each. Candidates are a superset of what `affects` accepts.
 */
export class InvalidationIndex {
  readonly #byResource = new Map<string, Set<CachedDecision>>();
  readonly #bySubject = new Map<string, Set<CachedDecision>>();
  readonly #byPermission = new Map<string, Set<CachedDecision>>();
  readonly #subjectSets = new Set<CachedDecision>();

  constructor(private readonly lookup: DependencyLookup) {}

  add(decision: CachedDecision): void {
    addTo(this.#byResource, decision.resource, decision);
    addTo(this.#bySubject, decision.subject, decision);
    addTo(this.#byPermission, decision.permission, decision);
    if (decision.subjectIsSet) this.#subjectSets.add(decision);
  }

  remove(decision: CachedDecision): void {
    removeFrom(this.#byResource, decision.resource, decision);
    removeFrom(this.#bySubject, decision.subject, decision);
    removeFrom(this.#byPermission, decision.permission, decision);
    this.#subjectSets.delete(decision);
  }

  /** The cached answers `change` could affect. */
  affected(change: RelationshipChange): Set<CachedDecision> {
    const candidates = new Set<CachedDecision>(this.#byResource.get(changedResource(change)));
    // Permissions for which only the changed subject's answers (and subject sets') can change.
    const bySubjectOnly = new Set<string>();
    for (const [permission, decisions] of this.#byPermission) {
      const read = readOf(change, this.lookup(permission));
      if (read === undefined || (read !== true && !read.tuplesetRemote && !read.memberRemote)) continue;
      if (read === true || read.tuplesetRemote || change.subjectRelation !== '' || change.subjectId === '*') {
        for (const decision of decisions) candidates.add(decision);
      } else bySubjectOnly.add(permission);
    }
    if (bySubjectOnly.size > 0) {
      for (const decision of this.#bySubject.get(`${change.subjectType}:${change.subjectId}`) ?? []) if (bySubjectOnly.has(decision.permission)) candidates.add(decision);
      for (const decision of this.#subjectSets) if (bySubjectOnly.has(decision.permission)) candidates.add(decision);
    }
    const affected = new Set<CachedDecision>();
    for (const decision of candidates) if (affects(change, decision, this.lookup)) affected.add(decision);
    return affected;
  }
}
