/**
 * HTTP path templates, e.g. `/v1/clouds/{cloud}/namespaces` or `/static/**`, parsed once at load.
 */
export type PathSegment =
  | { readonly kind: 'literal'; readonly value: string }
  | { readonly kind: 'param'; readonly name: string }
  | { readonly kind: 'rest' };

const PARAM = /^\{([A-Za-z_][A-Za-z0-9_]*)\}$/;

export class PathTemplateError extends Error {}

/** Splits like the matcher does (`/a/b` → `a`, `b`; `/` → one empty segment). */
export function parsePathTemplate(template: string): { segments: PathSegment[]; params: string[] } {
  if (!template.startsWith('/')) throw new PathTemplateError(`path "${template}" must start with /`);
  const parts = template.slice(1).split('/');
  const segments: PathSegment[] = [];
  const params: string[] = [];
  parts.forEach((part, index) => {
    if (part === '**') {
      if (index !== parts.length - 1) throw new PathTemplateError(`"**" must be the last segment of "${template}"`);
      segments.push({ kind: 'rest' });
      return;
    }
    const param = PARAM.exec(part);
    if (param) {
      const name = param[1] as string;
      if (params.includes(name)) throw new PathTemplateError(`parameter {${name}} appears twice in "${template}"`);
      params.push(name);
      segments.push({ kind: 'param', name });
      return;
    }
    if (part.includes('{') || part.includes('}')) {
      throw new PathTemplateError(`segment "${part}" of "${template}": a parameter must be a whole segment, {name}`);
    }
    segments.push({ kind: 'literal', value: part });
  });
  return { segments, params };
}
