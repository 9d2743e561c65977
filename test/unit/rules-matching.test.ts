import { beforeEach, describe, expect, it } from 'vitest';
import type { RequestContext } from '../../src/core/request-context.js';
import { compileRules, RuleConfigError } from '../../src/inbound/compile-rules.js';
import { inboundSchema } from '../../src/inbound/config.js';
import { parsePathTemplate } from '../../src/inbound/path-template.js';

function req(method: string, path: string, options: { grpc?: [string, string]; host?: string; headers?: Record<string, string> } = {}): RequestContext {
  return {
    direction: 'inbound',
    requestId: '',
    authority: options.host ?? 'api.local',
    method,
    path,
    query: '',
    grpc: options.grpc ? { service: options.grpc[0], method: options.grpc[1] } : undefined,
    headers: new Map(Object.entries(options.headers ?? {})),
    duplicateHeaders: new Set(),
    peerPrincipal: undefined,
    contextExtensions: { direction: 'inbound' },
    body: undefined,
  };
}

function index(rules: unknown[]) {
  return compileRules(inboundSchema.parse({ rules })!.rules, { root: undefined, maxBytes: 65_536 });
}

const token = (name: string, match: unknown) => ({ name, match, auth: 'token' });

describe('rule matching', () => {
  // Built in each test, not while the file is collected: code that runs at collection time runs
  // unmutated under Stryker (it activates a mutant in beforeAll), so these tests would not see it.
  let rules: ReturnType<typeof index>;
  beforeEach(() => {
    rules = buildRules();
  });
  const buildRules = () => index([
    token('grpc-write', { grpc: { service: 'authzed.api.v1.PermissionsService', method: 'WriteRelationships' } }),
    token('grpc-any', { grpc: { service: 'authzed.api.v1.PermissionsService' } }),
    token('ns-create', { http: { methods: ['POST'], path: '/v1/clouds/{cloud}/namespaces' } }),
    token('ns-list', { http: { methods: ['GET'], path: '/v1/clouds/{cloud}/namespaces' } }),
    token('ns-special', { http: { methods: ['PUT'], path: '/v1/clouds/special/namespaces' } }),
    token('ns-one', { http: { path: '/v1/clouds/{cloud}/namespaces/{ns}' } }),
    token('internal-host', { http: { path: '/v1/admin/**' }, host: '*.internal' }),
    token('admin-header', { http: { path: '/v1/admin/**' }, headers: { 'x-admin': 'yes' } }),
    token('health', { http: { methods: ['GET'], path: '/healthz' } }),
    token('root', { http: { path: '/' } }),
    ]);
  const name = (r: RequestContext) => rules.match(r)?.rule.name;

  it('matches gRPC by full method before falling back to the whole service', () => {
    expect(name(req('POST', '/authzed.api.v1.PermissionsService/WriteRelationships', { grpc: ['authzed.api.v1.PermissionsService', 'WriteRelationships'] }))).toBe('grpc-write');
    expect(name(req('POST', '/authzed.api.v1.PermissionsService/CheckPermission', { grpc: ['authzed.api.v1.PermissionsService', 'CheckPermission'] }))).toBe('grpc-any');
    expect(name(req('POST', '/other.Svc/Do', { grpc: ['other.Svc', 'Do'] }))).toBeUndefined();
  });

  it('matches HTTP method plus path template and captures decoded parameters', () => {
    expect(rules.match(req('POST', '/v1/clouds/cl0/namespaces'))).toMatchObject({ rule: { name: 'ns-create' }, pathParams: { cloud: 'cl0' } });
    expect(name(req('GET', '/v1/clouds/cl0/namespaces'))).toBe('ns-list');
    expect(name(req('DELETE', '/v1/clouds/cl0/namespaces'))).toBeUndefined();
    expect(rules.match(req('GET', '/v1/clouds/c%2El/namespaces/n1'))).toMatchObject({ rule: { name: 'ns-one' }, pathParams: { cloud: 'c.l', ns: 'n1' } });
  });

  it('prefers a literal segment over a parameter, and backtracks when the literal branch has no fitting rule', () => {
    expect(name(req('PUT', '/v1/clouds/special/namespaces'))).toBe('ns-special');
    // The literal branch has only a PUT rule, so POST backtracks to the {cloud} branch.
    expect(rules.match(req('POST', '/v1/clouds/special/namespaces'))).toMatchObject({ rule: { name: 'ns-create' }, pathParams: { cloud: 'special' } });
    expect(name(req('PUT', '/v1/clouds/special/namespaces/x'))).toBe('ns-one');
  });

  it('applies host and header conditions, first rule in file order winning', () => {
    expect(name(req('GET', '/v1/admin/users/1', { host: 'gw.internal' }))).toBe('internal-host');
    expect(name(req('GET', '/v1/admin/users/1', { headers: { 'x-admin': 'yes' } }))).toBe('admin-header');
    expect(name(req('GET', '/v1/admin', { headers: { 'x-admin': 'yes' } }))).toBe('admin-header');
    expect(name(req('GET', '/v1/admin/users/1', { headers: { 'x-admin': 'no' } }))).toBeUndefined();
  });

  it('does not match empty segments, trailing slashes or undecodable parameters', () => {
    expect(name(req('POST', '/v1/clouds//namespaces'))).toBeUndefined();
    expect(name(req('GET', '/healthz/'))).toBeUndefined();
    expect(name(req('GET', '/v1/clouds/%E0%A4%A/namespaces'))).toBeUndefined();
    expect(name(req('GET', '/'))).toBe('root');
  });

  it('binds a {param} to exactly one path segment: it never spans a slash', () => {
    expect(rules.match(req('GET', '/v1/clouds/a/b/namespaces'))).toBeUndefined();
    expect(rules.match(req('POST', '/v1/clouds/a/b/c/namespaces'))).toBeUndefined();
    expect(rules.match(req('GET', '/v1/clouds/cl0/namespaces/n1/n2'))).toBeUndefined();
    expect(rules.match(req('GET', '/v1/clouds/cl0/namespaces/n1'))).toMatchObject({ rule: { name: 'ns-one' }, pathParams: { cloud: 'cl0', ns: 'n1' } });
  });

  it('matches an exact host only as a whole authority, and a *. host only as a suffix after a dot', () => {
    const hosts = index([
      token('exact', { http: { path: '/x' }, host: 'api.internal' }),
      token('wild', { http: { path: '/y' }, host: '*.internal' }),
    ]);
    const hostName = (path: string, host: string) => hosts.match(req('GET', path, { host }))?.rule.name;
    expect(hostName('/x', 'api.internal')).toBe('exact');
    for (const other of ['api.internal.evil', 'evilapi.internal', 'x.api.internal', 'api.local']) expect(hostName('/x', other), other).toBeUndefined();
    expect(hostName('/y', 'a.b.internal')).toBe('wild');
    for (const other of ['internal', 'evilinternal', 'a.internal.evil']) expect(hostName('/y', other), other).toBeUndefined();
  });

  it('between a rule for the method and a rule for any method on one path, the first in the file wins', () => {
    const anyFirst = index([token('any', { http: { path: '/x' } }), token('get', { http: { methods: ['GET'], path: '/x' } })]);
    const getFirst = index([token('get', { http: { methods: ['GET'], path: '/x' } }), token('any', { http: { path: '/x' } })]);
    expect(anyFirst.match(req('GET', '/x'))?.rule.name).toBe('any');
    expect(getFirst.match(req('GET', '/x'))?.rule.name).toBe('get');
    expect(getFirst.match(req('POST', '/x'))?.rule.name).toBe('any');
    // A method rule whose conditions fail leaves the request to the any-method rule.
    const conditioned = index([token('get-admin', { http: { methods: ['GET'], path: '/x' }, headers: { 'x-admin': 'yes' } }), token('any', { http: { path: '/x' } })]);
    expect(conditioned.match(req('GET', '/x'))?.rule.name).toBe('any');
    expect(conditioned.match(req('GET', '/x', { headers: { 'x-admin': 'yes' } }))?.rule.name).toBe('get-admin');
  });

  it('rejects bad rules at load with their location', () => {
    expect(() => index([{ name: 'a', match: { http: { path: '/x/{id}' } }, checks: [{ resource: 'cloud:{path.cloud}', permission: 'view' }] }])).toThrow(
      /rules\[0\] \(a\)\.checks\[0\].*path\.cloud/,
    );
    expect(() => index([{ name: 'a', match: { http: { path: '/x/**/y' } }, auth: 'token' }])).toThrow(RuleConfigError);
    expect(() => index([{ name: 'a', match: { http: { path: '/x/a{id}' } }, auth: 'token' }])).toThrow(/whole segment/);
    expect(() => index([{ name: 'a', match: { http: { path: '/x' } }, checks: [{ resource: 'cloud:{path.x', permission: 'view' }] }])).toThrow(/unclosed/);
    expect(() => inboundSchema.parse({ rules: [{ name: 'a', match: { http: { path: '/x' } } }] })).toThrow(/auth/);
    expect(() => inboundSchema.parse({ rules: [{ name: 'a', match: { http: { path: '/x' }, grpc: { service: 'a.B' } }, auth: 'token' }] })).toThrow(/exactly one/);
  });
});

describe('matching cost does not grow with the number of rules', () => {
  function build(n: number) {
    const list: unknown[] = [];
    for (let i = 0; i < n; i++) {
      list.push(token(`h${i}`, { http: { methods: ['GET'], path: `/v1/svc${i}/items/{id}/parts/{part}` } }));
      list.push(token(`g${i}`, { grpc: { service: `pkg.v1.Svc${i}`, method: 'Get' } }));
    }
    return index(list);
  }

  function nsPerMatch(rules: ReturnType<typeof build>, requests: RequestContext[]): number {
    const rounds = 40_000;
    let best = Infinity;
    for (let run = 0; run < 5; run++) {
      const started = process.hrtime.bigint();
      for (let i = 0; i < rounds; i++) if (rules.match(requests[i % requests.length]!) === undefined) throw new Error('no match');
      best = Math.min(best, Number(process.hrtime.bigint() - started) / rounds);
    }
    return best;
  }

  it('names each load-time refusal: duplicate names, bad paths, and auth that does not fit the checks', () => {
    expect(() => index([token('a', { http: { path: '/x' } }), token('a', { http: { path: '/y' } })])).toThrow('inbound.rules[1] (a): duplicate rule name');
    expect(() => parsePathTemplate('x/{id}')).toThrow('path "x/{id}" must start with /');
    expect(parsePathTemplate('/static/{v}/**')).toEqual({ segments: [{ kind: 'literal', value: 'static' }, { kind: 'param', name: 'v' }, { kind: 'rest' }], params: ['v'] });
    expect(() => parsePathTemplate('/static/**/x')).toThrow('"**" must be the last segment of "/static/**/x"');
    for (const path of ['/x/a{id', '/x/id}', '/x/{id', '/x/{}', '/x/{1id}']) {
      expect(() => parsePathTemplate(path), path).toThrow(/a parameter must be a whole segment, \{name\}$/);
    }
    expect(() => index([token('a', { http: { path: '/x/{id}/{id}' } })])).toThrow('inbound.rules[0] (a).match.http.path: parameter {id} appears twice in "/x/{id}/{id}"');
    const problems = (rule: Record<string, unknown>) => {
      const result = inboundSchema.safeParse({ rules: [{ name: 'a', match: { http: { path: '/x' } }, ...rule }] });
      return result.success ? [] : result.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
    };
    const check = { resource: 'cloud:cl0', permission: 'view' };
    expect(problems({})).toEqual(['rules.0.auth: set auth: none | token, or give checks']);
    expect(problems({ auth: 'checks' })).toEqual(['rules.0.checks: auth: checks needs at least one check']);
    expect(problems({ auth: 'token', checks: [check] })).toEqual(['rules.0.checks: auth: token takes no checks']);
    expect(problems({ auth: 'none', checks: [check] })).toEqual(['rules.0.checks: auth: none takes no checks']);
    expect(problems({ checks: [check] })).toEqual([]);
    expect(problems({ auth: 'none' })).toEqual([]);
  });

  it('costs about the same with 10 and 10,000 rules', () => {
    const small = build(5); // 10 rules
    const large = build(5000); // 10,000 rules
    const requestsFor = (n: number) => [
      req('GET', `/v1/svc${n - 1}/items/abc/parts/p1`),
      req('POST', `/pkg.v1.Svc${n - 1}/Get`, { grpc: [`pkg.v1.Svc${n - 1}`, 'Get'] }),
    ];
    const a = nsPerMatch(small, requestsFor(5));
    const b = nsPerMatch(large, requestsFor(5000));
    console.log(`rule match: ${a.toFixed(0)} ns with 10 rules, ${b.toFixed(0)} ns with 10,000 rules`);
    // A linear scan would be ~1000x slower; allow generous noise for hash-map size effects.
    expect(b).toBeLessThan(a * 4 + 500);
  });
});
