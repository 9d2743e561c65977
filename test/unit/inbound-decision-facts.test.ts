/**
 * What an inbound decision says besides allow or deny: the facts the decision log carries (which
 * audience was asked for, which checks denied, what kind of token came), the consistency a rule set
 * asks SpiceDB for, and the gRPC rule precedence and conditions. Operators read these facts to
 * tell why a caller was refused; the rule set's consistency decides whether a revoked permission
 * can still be served from a stale snapshot.
 */
import { describe, expect, it } from 'vitest';
import type { PermissionAnswer, PermissionChecker, PermissionQuery, TokenVerifier, VerifiedToken, VerifyResult } from '../../src/core/ports.js';
import type { RequestContext } from '../../src/core/request-context.js';
import { compileRules } from '../../src/inbound/compile-rules.js';
import { inboundSchema } from '../../src/inbound/config.js';
import { createInboundAuthorizer } from '../../src/inbound/inbound-authorizer.js';

const BEARER = { authorization: 'Bearer eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln' };

function request(path: string, headers: Record<string, string> = BEARER, options: { grpc?: [string, string]; authority?: string } = {}): RequestContext {
  return {
    direction: 'inbound',
    requestId: 'r1',
    authority: options.authority ?? 'gw.local',
    method: 'POST',
    path,
    query: '',
    grpc: options.grpc === undefined ? undefined : { service: options.grpc[0], method: options.grpc[1] },
    headers: new Map(Object.entries(headers)),
    duplicateHeaders: new Set(),
    peerPrincipal: undefined,
    contextExtensions: { direction: 'inbound' },
    body: undefined,
  };
}

function token(extra: Partial<VerifiedToken> = {}): VerifiedToken {
  return {
    issuer: 'teleport',
    iss: 'https://teleport',
    issuerKind: 'external',
    subjectType: 'user',
    subject: 'alice',
    audience: ['gwadmin'],
    expiresAt: 2e9,
    actor: undefined,
    claims: { sub: 'alice' },
    fingerprint: 'fp-alice',
    ...extra,
  };
}

function authorizer(config: Record<string, unknown>) {
  const verifier = { result: { ok: true, value: token() } as VerifyResult, verify: undefined as unknown } as { result: VerifyResult } & TokenVerifier;
  verifier.verify = () => Promise.resolve(verifier.result);
  verifier.ready = () => true;
  const queries: PermissionQuery[] = [];
  const checker = {
    answer: { ok: true, value: { permissionship: 'allowed', cached: false } } as PermissionAnswer,
    check(query: PermissionQuery) {
      queries.push(query);
      return Promise.resolve(this.answer);
    },
    ready: () => true,
  } satisfies PermissionChecker & { answer: PermissionAnswer };
  const decide = createInboundAuthorizer(inboundSchema.parse(config)!, { verifier, checker, maxTokenBytes: 8192 }, { root: undefined, maxBytes: 65_536 });
  return { decide: (r: RequestContext) => decide.decide(r), verifier, checker, queries };
}

const VIEW = [{ resource: 'cloud:cl0', permission: 'view' }];

describe('the consistency a rule set asks for', () => {
  it('sends checks that set none at the rule set default: fully_consistent when configured, minimize_latency otherwise', async () => {
    const strict = authorizer({ consistency: 'fully_consistent', rules: [{ name: 'r', match: { http: { path: '/x' } }, checks: VIEW }] });
    await strict.decide(request('/x'));
    expect(strict.queries.map((q) => q.consistency)).toEqual([{ kind: 'fully_consistent' }]);
    const relaxed = authorizer({ rules: [{ name: 'r', match: { http: { path: '/x' } }, checks: VIEW }] });
    await relaxed.decide(request('/x'));
    expect(relaxed.queries.map((q) => q.consistency)).toEqual([{ kind: 'minimize_latency' }]);
  });
});

describe('the facts an inbound decision carries', () => {
  const rules = {
    rules: [
      { name: 'checked', match: { http: { path: '/checked' } }, audience: 'gwadmin-api', checks: [...VIEW, { resource: 'cloud:cl0', permission: 'edit' }] },
      { name: 'token-only', match: { http: { path: '/me' } }, auth: 'token' },
      { name: 'external', match: { http: { path: '/ext' } }, issuerKinds: ['external'], auth: 'token' },
    ],
  };

  it('names the audience the token was asked for, on an allow and on a deny', async () => {
    const { decide, verifier } = authorizer(rules);
    expect((await decide(request('/checked'))).facts).toMatchObject({ audience: 'gwadmin-api' });
    verifier.result = { ok: false, reason: 'wrong_audience', detail: 'token not for gwadmin-api' };
    expect(await decide(request('/checked'))).toMatchObject({ kind: 'deny', reason: 'wrong_audience', facts: { rule: 'checked', audience: 'gwadmin-api', detail: 'token not for gwadmin-api' } });
    // A rule with no audience of its own asks for none: the issuer's own applies, and no audience fact is made up.
    const denied = await decide(request('/me'));
    expect(denied.facts).not.toHaveProperty('audience');
  });

  it('says a request came without a token', async () => {
    const { decide } = authorizer(rules);
    expect(await decide(request('/checked', {}))).toMatchObject({ reason: 'missing_token', facts: { rule: 'checked', tokenKind: 'none' } });
  });

  it('lists the checks on a deny, so the log shows which one refused', async () => {
    const { decide, checker } = authorizer(rules);
    checker.answer = { ok: true, value: { permissionship: 'denied', cached: false } };
    const decision = await decide(request('/checked'));
    expect(decision).toMatchObject({ kind: 'deny', reason: 'permission_denied' });
    expect(decision.facts.checks).toHaveLength(2);
  });

  it('has no checks on a token-only rule, and asks SpiceDB nothing', async () => {
    const { decide, queries } = authorizer(rules);
    const decision = await decide(request('/me'));
    expect(decision).toMatchObject({ kind: 'allow', reason: 'allowed' });
    expect(decision.facts).not.toHaveProperty('checks');
    expect(queries).toEqual([]);
  });

  it('names what failed when the verifier throws, and denies', async () => {
    const { decide, verifier } = authorizer(rules);
    verifier.verify = () => Promise.reject(new Error('jwks parser bug'));
    expect(await decide(request('/me'))).toMatchObject({ kind: 'deny', reason: 'internal_error', facts: { detail: 'token verification failed unexpectedly: jwks parser bug' } });
  });

  it('refuses an actor that cannot travel as a header value, as it refuses such a subject', async () => {
    const { decide, verifier } = authorizer(rules);
    verifier.result = { ok: true, value: token({ actor: 'saga\r\nx-jwtauth-subject: root' }) };
    expect(await decide(request('/me'))).toMatchObject({ kind: 'deny', status: 401, reason: 'invalid_claim', facts: { detail: 'sub or act.sub has control characters' } });
    verifier.result = { ok: true, value: token({ actor: 'saga-runner' }) };
    expect(await decide(request('/me'))).toMatchObject({ kind: 'allow' });
  });

  it('says which token kinds a rule takes when it refuses an external token', async () => {
    const { decide, verifier } = authorizer({
      rules: [{ name: 'mesh', match: { http: { path: '/mesh' } }, issuerKinds: ['internal'], auth: 'token' }],
    });
    verifier.result = { ok: true, value: token({ issuerKind: 'external' }) };
    expect(await decide(request('/mesh'))).toMatchObject({ reason: 'external_token_not_accepted', facts: { detail: 'rule mesh takes internal tokens' } });
  });

  it('sets the same identity headers on every allow of one token', async () => {
    const { decide } = authorizer(rules);
    const first = await decide(request('/me'));
    const second = await decide(request('/me'));
    if (first.kind !== 'allow' || second.kind !== 'allow') throw new Error('expected two allows');
    expect(first.setHeaders).toContainEqual(['x-jwtauth-subject', 'alice']);
    expect(second.setHeaders).toEqual(first.setHeaders);
  });
});

describe('gRPC rules', () => {
  const SERVICE = 'pkg.v1.Things';
  const call = (method: string, authority = 'gw.local') => request(`/${SERVICE}/${method}`, BEARER, { grpc: [SERVICE, method], authority });
  const index = (rules: unknown[]) => compileRules(inboundSchema.parse({ rules })!.rules, { root: undefined, maxBytes: 65_536 });

  it('between a whole-service rule and an exact-method rule, the first in the file wins', () => {
    const serviceFirst = index([
      { name: 'service', match: { grpc: { service: SERVICE } }, checks: VIEW },
      { name: 'method', match: { grpc: { service: SERVICE, method: 'Get' } }, auth: 'none' },
    ]);
    expect(serviceFirst.match(call('Get'))?.rule.name).toBe('service');
    const methodFirst = index([
      { name: 'method', match: { grpc: { service: SERVICE, method: 'Get' } }, auth: 'none' },
      { name: 'service', match: { grpc: { service: SERVICE } }, checks: VIEW },
    ]);
    expect(methodFirst.match(call('Get'))?.rule.name).toBe('method');
    expect(methodFirst.match(call('List'))?.rule.name).toBe('service');
  });

  it('applies host conditions to gRPC rules: a rule for one host never answers for another', () => {
    const rules = index([
      { name: 'internal-public', match: { grpc: { service: SERVICE, method: 'Get' }, host: 'api.internal' }, auth: 'none' },
      { name: 'checked', match: { grpc: { service: SERVICE } }, checks: VIEW },
    ]);
    expect(rules.match(call('Get', 'api.internal'))?.rule.name).toBe('internal-public');
    expect(rules.match(call('Get', 'api.example'))?.rule.name).toBe('checked');
  });

  it('keeps two methods of one service apart', () => {
    const rules = index([
      { name: 'get', match: { grpc: { service: SERVICE, method: 'Get' } }, auth: 'none' },
      { name: 'delete', match: { grpc: { service: SERVICE, method: 'Delete' } }, checks: VIEW },
    ]);
    expect(rules.match(call('Get'))?.rule.name).toBe('get');
    expect(rules.match(call('Delete'))?.rule.name).toBe('delete');
    expect(rules.match(call('List'))).toBeUndefined();
  });
});
