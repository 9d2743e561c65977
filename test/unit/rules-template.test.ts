import { describe, expect, it } from 'vitest';
import type { VerifiedToken } from '../../src/core/ports.js';
import type { RequestContext } from '../../src/core/request-context.js';
import { permissionCheckSpecSchema, compilePermissionCheck, MINIMIZE_LATENCY } from '../../src/rules/permission-check-spec.js';
import { compileTemplate, TemplateError } from '../../src/rules/template.js';
import type { TemplateScope } from '../../src/rules/template.js';

function request(headers: Record<string, string> = {}, ext: Record<string, string> = {}): RequestContext {
  return {
    direction: 'inbound',
    requestId: 'r1',
    authority: 'api.local',
    method: 'POST',
    path: '/v1/clouds/cl0/namespaces',
    query: '',
    grpc: undefined,
    headers: new Map(Object.entries(headers)),
    duplicateHeaders: new Set(),
    peerPrincipal: 'spiffe://cluster/ns/default/sa/gwadmin',
    contextExtensions: { direction: 'inbound', ...ext },
    body: undefined,
  };
}

const token: VerifiedToken = {
  issuer: 'teleport',
  iss: 'https://teleport.example',
  issuerKind: 'external',
  subjectType: 'user',
  subject: 'cloud-teleport-aleksander.rykalin',
  audience: ['gwadmin'],
  expiresAt: 2_000_000_000,
  actor: undefined,
  claims: { sub: 'cloud-teleport-aleksander.rykalin', org: { id: 'o1', n: 7 }, roles: ['a'], email: 'a.r@example.com' },
  fingerprint: 'fp-aleksander',
};

function scope(extra: Partial<TemplateScope> = {}): TemplateScope {
  return { request: request({ 'x-cloud-id': 'cl9', 'x-zed': 'GhUKEzE2' }, { audience: 'gwadmin' }), pathParams: { cloud: 'cl0' }, token, ...extra };
}

describe('templates', () => {
  it('renders every reference kind from its own source', () => {
    const t = compileTemplate('{path.cloud}|{header.X-Cloud-Id}|{ext.audience}|{claim.org.id}|{claim.org.n}|{subject_type}|{issuer}|{host}|{method}', 'w');
    expect(t.render(scope())).toBe('cl0|cl9|gwadmin|o1|7|user|teleport|api.local|POST');
    expect(compileTemplate('{peer}', 'w').render(scope())).toBe('spiffe://cluster/ns/default/sa/gwadmin');
  });

  it('escapes {subject} and |id values so they are valid SpiceDB ids; raw claims stay raw', () => {
    expect(compileTemplate('user:{subject}', 'w').render(scope())).toBe('user:=cloud-teleport-aleksander=2Erykalin');
    expect(compileTemplate('{claim.sub}', 'w').render(scope())).toBe('cloud-teleport-aleksander.rykalin');
    expect(compileTemplate('user:{claim.email|id}', 'w').render(scope())).toBe('user:=a=2Er=40example=2Ecom');
  });

  it('uses the subject override instead of the token subject', () => {
    const t = compileTemplate('{subject_type}:{subject}', 'w');
    expect(t.render(scope({ subjectOverride: { type: 'user', id: 'bob' } }))).toBe('user:bob');
    expect(t.render(scope({ token: undefined }))).toBeUndefined();
  });

  it('renders undefined when any referenced value is missing, empty or not a scalar', () => {
    expect(compileTemplate('cloud:{path.nope}', 'w').render(scope())).toBeUndefined();
    expect(compileTemplate('cloud:{header.x-missing}', 'w').render(scope())).toBeUndefined();
    expect(compileTemplate('{claim.roles}', 'w').render(scope())).toBeUndefined();
    expect(compileTemplate('{claim.org}', 'w').render(scope())).toBeUndefined();
    expect(compileTemplate('x{claim.toString}', 'w').render(scope())).toBeUndefined();
    expect(compileTemplate('{path.cloud}', 'w').render(scope({ pathParams: { cloud: '' } }))).toBeUndefined();
  });

  it('treats doubled braces as literal text and reports literals', () => {
    const t = compileTemplate('a{{b}}c', 'w');
    expect(t.literal).toBe('a{b}c');
    expect(t.render(scope())).toBe('a{b}c');
  });

  it('rejects bad templates at load with the location in the message', () => {
    expect(() => compileTemplate('cloud:{path.cloud', 'rules[3].checks[0].resource')).toThrow(/rules\[3\]\.checks\[0\]\.resource: unclosed/);
    expect(() => compileTemplate('{bogus.x}', 'w')).toThrow(TemplateError);
    expect(() => compileTemplate('{path.}', 'w')).toThrow(/needs a name/);
    expect(() => compileTemplate('{claim.a|upper}', 'w')).toThrow(/unknown modifier/);
    expect(() => compileTemplate('a}b', 'w')).toThrow(/unmatched/);
    expect(() => compileTemplate('{subject|id}', 'w')).toThrow(/already escaped/);
  });
});

describe('compiled checks', () => {
  const compile = (input: unknown) => compilePermissionCheck(permissionCheckSpecSchema.parse(input), 'rules[0].checks[0]');

  it('builds a query with the default subject and the caller default consistency', () => {
    const check = compile({ resource: 'cloud:{path.cloud}', permission: 'create_saga' });
    expect(check.build(scope(), MINIMIZE_LATENCY)).toEqual({
      ok: true,
      value: {
      resource: { type: 'cloud', id: 'cl0' },
      permission: 'create_saga',
      subject: { type: 'user', id: '=cloud-teleport-aleksander=2Erykalin' },
      consistency: { kind: 'minimize_latency' },
      },
    });
  });

  it('parses subject relations and renders caveat context', () => {
    const check = compile({
      resource: 'namespace:{header.x-cloud-id}',
      permission: 'write',
      subject: 'cloud:{path.cloud}#member',
      consistency: 'fully_consistent',
      context: { org: '{claim.org.id}', limit: 3, strict: true },
    });
    expect(check.build(scope(), MINIMIZE_LATENCY)).toEqual({
      ok: true,
      value: {
      resource: { type: 'namespace', id: 'cl9' },
      permission: 'write',
      subject: { type: 'cloud', id: 'cl0', relation: 'member' },
      consistency: { kind: 'fully_consistent' },
      context: { org: 'o1', limit: 3, strict: true },
      },
    });
  });

  it('takes at_least_as_fresh ZedTokens from a header and falls back when absent', () => {
    const check = compile({ resource: 'cloud:cl0', permission: 'view', consistency: { atLeastAsFresh: '{header.x-zed}' } });
    expect(check.build(scope(), MINIMIZE_LATENCY)).toMatchObject({ value: { consistency: { kind: 'at_least_as_fresh', zedToken: 'GhUKEzE2' } } });
    const noHeader = scope({ request: request() });
    expect(check.build(noHeader, MINIMIZE_LATENCY)).toMatchObject({ value: { consistency: { kind: 'fully_consistent' } } });
  });

  it('refuses to build a query whose rendered ids SpiceDB would reject, or with missing values', () => {
    const raw = compile({ resource: 'cloud:cl0', permission: 'view', subject: 'user:{claim.sub}' });
    const result = raw.build(scope(), MINIMIZE_LATENCY);
    expect(!result.ok && result.detail).toMatch(/not a valid SpiceDB id/);
    const missing = compile({ resource: 'cloud:{header.x-nope}', permission: 'view' });
    expect(missing.build(scope(), MINIMIZE_LATENCY)).toMatchObject({ ok: false, reason: 'invalid_check_input' });
    const wildcard = compile({ resource: 'cloud:{header.x-cloud-id}', permission: 'view' });
    expect(wildcard.build(scope({ request: request({ 'x-cloud-id': '*' }) }), MINIMIZE_LATENCY)).toMatchObject({ ok: false, reason: 'invalid_check_input' });
  });

  it('rejects invalid literal types, permissions and caveat names at load', () => {
    expect(() => compile({ resource: 'Cloud:{path.cloud}', permission: 'view' })).toThrow(/object type/);
    expect(() => compile({ resource: 'cloud:x', permission: 'View-All' })).toThrow(/permission/);
    expect(() => compile({ resource: 'cloud:x#member', permission: 'view' })).toThrow(/#relation/);
    expect(() => compile({ resource: 'cloud:x', permission: 'view', context: { 'bad-name': 'x' } })).toThrow(/caveat parameter/);
    expect(() => compile({ resource: 'cloudx', permission: 'view' })).toThrow(/type:id/);
  });
});
