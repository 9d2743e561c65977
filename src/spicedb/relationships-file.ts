/**
 * The relationships file read by the embedded SpiceDB: one relationship per line, in SpiceDB's
 * own notation, so lines can be pasted from `zed relationship read` output:
 *
 *   namespace:ns1#cloud@cloud:cl0
 *   cloud:cl0#saga_creator@user:alice
 *   cloud:cl0#member@group:ops#member
 *   cloud:cl0#saga_creator@user:bob[weekday_only:{"allowed_days":[1,2,3]}]
 *
 * `#` at the start of a line and blank lines are ignored. Ids must already be valid SpiceDB ids;
 * escape subject ids with the subject-id scheme (docs/inbound.md).
 */
import { didYouMean } from '../base/closest-name.js';
import type { SchemaModel } from './schema-model.js';

export interface RelationshipLine {
  /** 1-based line in the file, for problems. */
  readonly line: number;
  readonly resource: { readonly type: string; readonly id: string };
  readonly relation: string;
  readonly subject: { readonly type: string; readonly id: string; readonly relation?: string };
  readonly caveat?: { readonly name: string; readonly context?: Record<string, unknown> };
}

const LINE = /^([a-z][a-z0-9_/]*):([a-zA-Z0-9/_|\-=+]+)#([a-z][a-z0-9_]*)@([a-z][a-z0-9_/]*):([a-zA-Z0-9/_|\-=+]+|\*)(?:#([a-z][a-z0-9_]*))?(?:\[([a-z][a-z0-9_]*)(?::(\{.*\}))?\])?$/;

export function parseRelationships(text: string, source: string): RelationshipLine[] {
  const out: RelationshipLine[] = [];
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith('//')) return;
    const m = LINE.exec(line);
    if (!m) throw new Error(`${source}:${index + 1}: expected type:id#relation@type:id[#relation][[caveat[:{json}]]], got "${line}"`);
    const [, rt, rid, rel, st, sid, srel, caveat, context] = m as unknown as [string, string, string, string, string, string, string?, string?, string?];
    let caveatValue: RelationshipLine['caveat'];
    if (caveat !== undefined) {
      let parsed: Record<string, unknown> | undefined;
      if (context !== undefined) {
        try {
          parsed = JSON.parse(context) as Record<string, unknown>;
        } catch {
          throw new Error(`${source}:${index + 1}: caveat context is not JSON`);
        }
      }
      caveatValue = parsed === undefined ? { name: caveat } : { name: caveat, context: parsed };
    }
    out.push({
      line: index + 1,
      resource: { type: rt, id: rid },
      relation: rel,
      subject: srel === undefined ? { type: st, id: sid } : { type: st, id: sid, relation: srel },
      ...(caveatValue ? { caveat: caveatValue } : {}),
    });
  });
  return out;
}

function allowedSubjectText(allowed: { type: string; relation?: string; wildcard: boolean; caveat?: string }): string {
  return `${allowed.type}${allowed.wildcard ? ':*' : ''}${allowed.relation ? `#${allowed.relation}` : ''}${allowed.caveat ? ` with ${allowed.caveat}` : ''}`;
}

/**
 * What SpiceDB would refuse when loading these relationships into `model`: an unknown type, a
 * relation the definition lacks (or a permission, which cannot be written), or a subject the
 * relation does not allow. Checked at load, so `validate` refuses what the embedded SpiceDB would.
 */
export function relationshipProblems(lines: readonly RelationshipLine[], model: SchemaModel, source: string): string[] {
  const problems: string[] = [];
  for (const entry of lines) {
    const at = `${source}:${entry.line}`;
    const definition = model.definitions.get(entry.resource.type);
    if (definition === undefined) {
      problems.push(`${at}: "${entry.resource.type}" is not a definition in the schema${didYouMean(entry.resource.type, model.definitions.keys())}`);
      continue;
    }
    const allowed = definition.relations.get(entry.relation);
    if (allowed === undefined) {
      const what = definition.permissions.has(entry.relation) ? 'is a permission; only relations can be written' : `is not a relation of definition "${entry.resource.type}"`;
      problems.push(`${at}: "${entry.relation}" ${what}${didYouMean(entry.relation, definition.relations.keys())}`);
      continue;
    }
    const { subject } = entry;
    const fits = allowed.some(
      (option) =>
        option.type === subject.type &&
        option.relation === subject.relation &&
        option.wildcard === (subject.id === '*') &&
        option.caveat === entry.caveat?.name,
    );
    if (!fits) {
      problems.push(`${at}: ${entry.resource.type}#${entry.relation} does not allow this subject; it allows ${allowed.map(allowedSubjectText).join(' | ')}`);
    }
  }
  return problems;
}
