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
export interface RelationshipLine {
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
      resource: { type: rt, id: rid },
      relation: rel,
      subject: srel === undefined ? { type: st, id: sid } : { type: st, id: sid, relation: srel },
      ...(caveatValue ? { caveat: caveatValue } : {}),
    });
  });
  return out;
}
