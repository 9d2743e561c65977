/**
 * String templates for SpiceDB checks, e.g. `cloud:{path.cloud}` or `{subject_type}:{subject}`.
 * A template is parsed once at load into literal parts and value getters; rendering is a loop of
 * property reads and string concatenation, with no parsing or regex work per request.
 *
 * References:
 *   {path.NAME}      path parameter captured by the rule's path template (percent-decoded)
 *   {header.NAME}    request header (name case-insensitive; repeated headers arrive joined by `,`)
 *   {claim.A.B}      token claim; dots walk into objects; strings, numbers and booleans only
 *   {ext.NAME}       Envoy context_extensions value
 *   {body.A.B}       a field of the request message (gRPC, decoded with the configured descriptors)
 *                    or of the JSON body; read once per request by the rule's body reader
 *   {subject}        the subject id, encoded with the SpiceDB subject-id escaping
 *   {subject_type}   the SpiceDB object type of the subject (issuer's `subjectType`)
 *   {issuer}         configured name of the token's issuer
 *   {peer}           mTLS peer principal
 *   {host} {method}  request authority and HTTP method
 * A reference may end in `|id` to apply the subject-id escaping to any value, e.g.
 * `user:{claim.email|id}`. `{{` and `}}` are literal braces.
 *
 * A missing or empty value makes the whole render undefined: a check against `cloud:` must never
 * be sent, and the caller turns undefined into a deny.
 */
import type { VerifiedToken } from '../core/ports.js';
import type { RequestContext } from '../core/request-context.js';
import { HEADER_NAME } from '../core/header-name.js';
import { encodeSubjectId } from '../core/subject-id.js';

export interface TemplateScope {
  readonly request: RequestContext;
  readonly pathParams: Readonly<Record<string, string>>;
  readonly token: VerifiedToken | undefined;
  /** Replaces the token's subject for `{subject}` / `{subject_type}` (on-behalf-of checks). */
  readonly subjectOverride?: { readonly type: string; readonly id: string };
  /** Request message fields by path, read before the checks are built; absent when no template reads the body. */
  readonly body?: ReadonlyMap<string, string>;
}

type TemplateSource = 'path' | 'header' | 'claim' | 'ext' | 'body' | 'subject' | 'subject_type' | 'issuer' | 'peer' | 'host' | 'method';

export interface TemplateRef {
  readonly source: TemplateSource;
  /** Parameter, header, claim or body path, or extension name; empty for the name-less sources. */
  readonly name: string;
  readonly encodeAsId: boolean;
}

export interface CompiledTemplate {
  readonly source: string;
  readonly references: readonly TemplateRef[];
  /** The value when the template has no references, else undefined. */
  readonly literal: string | undefined;
  render(scope: TemplateScope): string | undefined;
}

export class TemplateError extends Error {
  constructor(
    readonly where: string,
    message: string,
  ) {
    super(`${where}: ${message}`);
    this.name = 'TemplateError';
  }
}

type Getter = (scope: TemplateScope) => string | undefined;
type Part = string | Getter;

const NAME = /^[A-Za-z0-9_.:-]+$/;

function claimValue(claims: Readonly<Record<string, unknown>>, path: readonly string[]): string | undefined {
  let value: unknown = claims;
  for (const key of path) {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) return undefined;
    if (!Object.hasOwn(value, key)) return undefined;
    value = (value as Record<string, unknown>)[key];
  }
  if (typeof value === 'string') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  return undefined;
}

function getterFor(ref: TemplateRef): Getter {
  const { name } = ref;
  switch (ref.source) {
    case 'path':
      return (s) => (Object.hasOwn(s.pathParams, name) ? s.pathParams[name] : undefined);
    case 'header':
      return (s) => s.request.headers.get(name);
    case 'ext':
      return (s) => (Object.hasOwn(s.request.contextExtensions, name) ? s.request.contextExtensions[name] : undefined);
    case 'body':
      return (s) => s.body?.get(name);
    case 'claim': {
      const path = name.split('.');
      return (s) => (s.token ? claimValue(s.token.claims, path) : undefined);
    }
    case 'subject':
      // Always escaped: `{subject}` is only ever used as a SpiceDB object id.
      return (s) => {
        const id = s.subjectOverride ? s.subjectOverride.id : s.token?.subject;
        return id === undefined ? undefined : encodeSubjectId(id);
      };
    case 'subject_type':
      return (s) => (s.subjectOverride ? s.subjectOverride.type : s.token?.subjectType);
    case 'issuer':
      return (s) => s.token?.issuer;
    case 'peer':
      return (s) => s.request.peerPrincipal;
    case 'host':
      return (s) => s.request.authority;
    case 'method':
      return (s) => s.request.method;
  }
}

function withEncoding(get: Getter): Getter {
  return (s) => {
    const value = get(s);
    return value === undefined || value === '' ? undefined : encodeSubjectId(value);
  };
}

const NAMELESS: ReadonlySet<string> = new Set(['subject', 'subject_type', 'issuer', 'peer', 'host', 'method']);
const NAMED: ReadonlySet<string> = new Set(['path', 'header', 'claim', 'ext', 'body']);

function parseRef(body: string, where: string): TemplateRef {
  let expr = body.trim();
  let encodeAsId = false;
  const bar = expr.indexOf('|');
  if (bar >= 0) {
    const modifier = expr.slice(bar + 1).trim();
    if (modifier !== 'id') throw new TemplateError(where, `unknown modifier "|${modifier}" in {${body}} (only |id exists)`);
    encodeAsId = true;
    expr = expr.slice(0, bar).trim();
  }
  if (NAMELESS.has(expr)) {
    if (expr === 'subject' && encodeAsId) throw new TemplateError(where, '{subject} is already escaped; drop |id');
    return { source: expr as TemplateSource, name: '', encodeAsId };
  }
  const dot = expr.indexOf('.');
  const source = dot > 0 ? expr.slice(0, dot) : expr;
  const name = dot > 0 ? expr.slice(dot + 1) : '';
  if (!NAMED.has(source)) {
    throw new TemplateError(
      where,
      `unknown reference {${body}}; use path.X, header.X, claim.X, ext.X, body.X, subject, subject_type, issuer, peer, host or method`,
    );
  }
  if (name === '') throw new TemplateError(where, `{${source}.NAME} needs a name`);
  if (source === 'header') {
    if (!HEADER_NAME.test(name)) throw new TemplateError(where, `invalid header name "${name}"`);
    return { source, name: name.toLowerCase(), encodeAsId };
  }
  if (!NAME.test(name) || ((source === 'claim' || source === 'body') && name.split('.').some((k) => k === ''))) {
    throw new TemplateError(where, `invalid name "${name}" in {${body}}`);
  }
  return { source: source as TemplateSource, name, encodeAsId };
}

export function compileTemplate(source: string, where: string): CompiledTemplate {
  if (typeof source !== 'string') throw new TemplateError(where, 'template must be a string');
  const parts: Part[] = [];
  const references: TemplateRef[] = [];
  let text = '';
  for (let i = 0; i < source.length; i++) {
    const ch = source[i];
    if (ch === '{') {
      if (source[i + 1] === '{') {
        text += '{';
        i++;
        continue;
      }
      const end = source.indexOf('}', i + 1);
      if (end < 0) throw new TemplateError(where, `unclosed "{" at offset ${i} in "${source}"`);
      const body = source.slice(i + 1, end);
      if (body.includes('{')) throw new TemplateError(where, `nested "{" at offset ${i} in "${source}"`);
      const ref = parseRef(body, where);
      references.push(ref);
      if (text !== '') parts.push(text);
      text = '';
      const get = getterFor(ref);
      parts.push(ref.encodeAsId ? withEncoding(get) : get);
      i = end;
    } else if (ch === '}') {
      if (source[i + 1] !== '}') throw new TemplateError(where, `unmatched "}" at offset ${i} in "${source}" (write "}}" for a brace)`);
      text += '}';
      i++;
    } else {
      text += ch;
    }
  }
  if (text !== '') parts.push(text);
  return build(source, parts, references);
}

function build(source: string, parts: readonly Part[], references: readonly TemplateRef[]): CompiledTemplate {
  if (references.length === 0) {
    const value = parts.length === 0 ? '' : (parts[0] as string);
    return { source, references, literal: value, render: () => value };
  }
  if (parts.length === 1) {
    const only = parts[0] as Getter;
    return {
      source,
      references,
      literal: undefined,
      render: (scope) => {
        const value = only(scope);
        return value === '' ? undefined : value;
      },
    };
  }
  return {
    source,
    references,
    literal: undefined,
    render(scope) {
      let out = '';
      for (const part of parts) {
        if (typeof part === 'string') {
          out += part;
        } else {
          const value = part(scope);
          if (value === undefined || value === '') return undefined;
          out += value;
        }
      }
      return out;
    },
  };
}
