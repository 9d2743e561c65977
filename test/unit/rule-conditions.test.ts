/**
 * `require` on inbound rules: scopes (both the `scope` string and the `scp` array), claim
 * conditions, their config errors, the RFC 6750 insufficient_scope challenge, and the order
 * (after the token, before SpiceDB; gating the matched rule, never choosing it).
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { runCli } from '../../src/commands/dispatch.js';
import { ConfigError, validateConfig } from '../../src/config/load.js';
import type { Decision } from '../../src/core/decision.js';
import type { PermissionAnswer, PermissionChecker, PermissionQuery, TokenVerifier, VerifiedToken, VerifyResult } from '../../src/core/ports.js';
import type { RequestContext } from '../../src/core/request-context.js';
import { renderCheckResponse } from '../../src/envoy/check-response.js';
import { inboundSchema } from '../../src/inbound/config.js';
import { createInboundAuthorizer } from '../../src/inbound/inbound-authorizer.js';
import { compileRequirement, grantedScopes, insufficientScopeChallenge, requirementSchema } from '../../src/rules/conditions.js';
import { jwks, makeSigningKey, nowSeconds, signToken } from '../../dev/jwt-fixtures.js';

const TOKEN = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln';

function request(path: string): RequestContext {
  return {
    direction: 'inbound',
    requestId: 'r',
    authority: 'api.local',
    method: 'GET',
    path,
    query: '',
    grpc: undefined,
    headers: new Map([['authorization', `Bearer ${TOKEN}`]]),
    duplicateHeaders: new Set(),
    peerPrincipal: undefined,
    contextExtensions: { direction: 'inbound' },
    body: undefined,
  };
}

function tokenWith(claims: Record<string, unknown>): VerifiedToken {
  return {
    issuer: 'auth',
    iss: 'https://auth',
    issuerKind: 'external',
    subjectType: 'user',
    subject: 'alice',
    audience: ['api'],
    expiresAt: 2e9,
    actor: undefined,
    claims: { sub: 'alice', ...claims },
    fingerprint: 'fp',
  };
}

class FixedVerifier implements TokenVerifier {
  constructor(public claims: Record<string, unknown> = {}) {}
  verify(): Promise<VerifyResult> {
    return Promise.resolve({ ok: true, value: tokenWith(this.claims) });
  }
  ready(): boolean {
    return true;
  }
}

class CountingChecker implements PermissionChecker {
  readonly queries: PermissionQuery[] = [];
  check(query: PermissionQuery): Promise<PermissionAnswer> {
    this.queries.push(query);
    return Promise.resolve({ ok: true, value: { permissionship: 'allowed', cached: false } });
  }
  ready(): boolean {
    return true;
  }
}

const RULES = {
  rules: [
    {
      name: 'vm-write',
      match: { http: { path: '/v1/vms' } },
      require: { scopes: ['vm.read', 'vm.write'] },
      checks: [{ resource: 'platform:vms', permission: 'write' }],
    },
    { name: 'tenant-only', match: { http: { path: '/v1/tenant' } }, require: { claims: { tenant: { equals: 'acme' } } } },
    // Same route, later in the file: a token failing the first rule's condition must not land here.
    { name: 'tenant-fallback', match: { http: { path: '/v1/tenant' } }, auth: 'token' },
    {
      name: 'all-operators',
      match: { http: { path: '/v1/all' } },
      require: {
        scopes: ['profile'],
        claims: {
          'org.tier': { oneOf: ['gold', 'silver'] },
          groups: { contains: 'admins' },
          amr: { contains: 'mfa' },
          email_verified: { equals: true },
          level: { equals: 3 },
          acr: { present: true },
        },
      },
    },
  ],
};

function setup(claims: Record<string, unknown>) {
  const checker = new CountingChecker();
  const authorizer = createInboundAuthorizer(
    inboundSchema.parse(RULES)!,
    { verifier: new FixedVerifier(claims), checker, maxTokenBytes: 8192 },
    { root: undefined, maxBytes: 65_536 },
  );
  return { authorizer, checker };
}

async function decide(path: string, claims: Record<string, unknown>): Promise<{ decision: Decision; spicedbCalls: number }> {
  const { authorizer, checker } = setup(claims);
  const decision = await authorizer.decide(request(path));
  return { decision, spicedbCalls: checker.queries.length };
}

const ALL_MET = {
  scope: 'openid profile',
  org: { tier: 'gold' },
  groups: ['staff', 'admins'],
  amr: 'pwd mfa',
  email_verified: true,
  level: 3,
  acr: 'urn:mace:incommon:iap:silver',
};

describe('granted scopes: scope (space-separated string) and scp (array)', () => {
  it('reads a space-separated scope string, tolerating repeated spaces', () => {
    expect([...grantedScopes({ scope: 'vm.read  vm.write' })]).toEqual(['vm.read', 'vm.write']);
  });

  it('reads an scp array, ignoring elements that are not strings', () => {
    expect([...grantedScopes({ scp: ['vm.read', 7, null, 'vm.write'] })]).toEqual(['vm.read', 'vm.write']);
  });

  it('reads scp as a space-separated string too (Entra ID access tokens)', () => {
    expect([...grantedScopes({ scp: 'User.Read Mail.Read' })]).toEqual(['User.Read', 'Mail.Read']);
  });

  it('grants the union when a token has both', () => {
    expect([...grantedScopes({ scope: 'vm.read', scp: ['vm.write'] })].sort()).toEqual(['vm.read', 'vm.write']);
  });

  it('grants nothing for absent or malformed claims', () => {
    expect(grantedScopes({}).size).toBe(0);
    expect(grantedScopes({ scope: 42, scp: { a: 1 } }).size).toBe(0);
  });
});

describe('require.scopes on a rule', () => {
  it('allows with the scope string form, checking SpiceDB after', async () => {
    const { decision, spicedbCalls } = await decide('/v1/vms', { scope: 'vm.write openid vm.read' });
    expect(decision).toMatchObject({ kind: 'allow', reason: 'allowed' });
    expect(decision.facts.conditions).toEqual([
      { condition: 'scope vm.read', met: true },
      { condition: 'scope vm.write', met: true },
    ]);
    expect(spicedbCalls).toBe(1);
  });

  it('allows with the scp array form', async () => {
    expect((await decide('/v1/vms', { scp: ['vm.read', 'vm.write'] })).decision.kind).toBe('allow');
  });

  it('allows a token whose scope and scp together hold the scopes', async () => {
    expect((await decide('/v1/vms', { scope: 'vm.read', scp: ['vm.write'] })).decision.kind).toBe('allow');
  });

  it('denies 403 insufficient_scope with the RFC 6750 challenge, naming the missing scope, without asking SpiceDB', async () => {
    const { decision, spicedbCalls } = await decide('/v1/vms', { scope: 'vm.read' });
    expect(decision).toMatchObject({
      kind: 'deny',
      reason: 'insufficient_scope',
      status: 403,
      headers: [['www-authenticate', 'Bearer realm="jwtauth", error="insufficient_scope", scope="vm.read vm.write"']],
      facts: { rule: 'vm-write', subject: 'alice', detail: 'rule vm-write: the token lacks scope vm.write' },
    });
    expect(decision.facts.conditions).toEqual([
      { condition: 'scope vm.read', met: true },
      { condition: 'scope vm.write', met: false },
    ]);
    expect(spicedbCalls).toBe(0);
  });

  it('does not split an scp array element: "vm.read vm.write" as one element grants neither', async () => {
    expect((await decide('/v1/vms', { scp: ['vm.read vm.write'] })).decision.reason).toBe('insufficient_scope');
  });

  it('renders the challenge on the denied response Envoy sends to the caller', async () => {
    const { decision } = await decide('/v1/vms', {});
    const response = renderCheckResponse(decision);
    const headers = Object.fromEntries((response.denied_response?.headers ?? []).map((option) => [option.header?.key, option.header?.value]));
    expect(response.denied_response?.status?.code).toBe(403);
    expect(headers['www-authenticate']).toBe('Bearer realm="jwtauth", error="insufficient_scope", scope="vm.read vm.write"');
    expect(headers['x-jwtauth-reason']).toBe('insufficient_scope');
    expect(response.denied_response?.body).toBe('insufficient_scope: the token lacks a scope this route requires');
  });

  it('builds the challenge value once per rule, at compile time', () => {
    expect(insufficientScopeChallenge(['a', 'b:c'])).toBe('Bearer realm="jwtauth", error="insufficient_scope", scope="a b:c"');
    const requirement = compileRequirement(requirementSchema.parse({ scopes: ['a'] }));
    const first = requirement.evaluate({});
    const second = requirement.evaluate({ scope: 'b' });
    if (first.met || second.met) throw new Error('expected unmet');
    expect(first.challenge).toBe(second.challenge);
    // An allow reuses one frozen verdict: nothing is allocated for the records.
    expect(requirement.evaluate({ scope: 'a' })).toBe(requirement.evaluate({ scp: ['a'] }));
  });
});

/** The conditions of rule all-operators, as the facts name them, in order. */
const EVERY_CONDITION = [
  'scope profile',
  'claim org.tier oneOf ["gold","silver"]',
  'claim groups contains "admins"',
  'claim amr contains "mfa"',
  'claim email_verified equals true',
  'claim level equals 3',
  'claim acr present',
];

describe('require.claims on a rule', () => {
  it('allows when every operator is met; the facts list each condition', async () => {
    const { decision } = await decide('/v1/all', ALL_MET);
    expect(decision).toMatchObject({ kind: 'allow', reason: 'allowed' });
    expect(decision.facts.conditions?.map((c) => c.condition)).toEqual(EVERY_CONDITION);
  });

  const failures: Array<[string, Record<string, unknown>, string]> = [
    ['oneOf: a value outside the list', { org: { tier: 'bronze' } }, 'claim org.tier is not one of the 2 allowed values'],
    ['oneOf: a nested claim whose parent is absent', { org: undefined }, 'claim org.tier is absent'],
    ['contains: an array without the member', { groups: ['staff'] }, 'claim groups does not contain the required value'],
    ['contains: a substring is not a member', { groups: 'admins-readonly' }, 'claim groups does not contain the required value'],
    ['contains: a space-separated string without the word', { amr: 'pwd otp' }, 'claim amr does not contain the required value'],
    ['contains: an object', { groups: { admins: true } }, 'claim groups is an object; contains wants an array or a space-separated string'],
    ['equals: a value of another type', { email_verified: 'yes' }, 'claim email_verified is a string; equals wants a boolean'],
    ['equals: another value', { level: 2 }, 'claim level is not the required value'],
    ['present: absent', { acr: undefined }, 'claim acr is absent'],
    ['present: null', { acr: null }, 'claim acr is absent'],
  ];

  it.each(failures)('denies 403 claim_condition_failed for %s, naming the claim but never its value', async (_, change, detail) => {
    const claims: Record<string, unknown> = { ...ALL_MET, ...change };
    for (const [name, value] of Object.entries(change)) if (value === undefined) delete claims[name];
    const { decision, spicedbCalls } = await decide('/v1/all', claims);
    expect(decision).toMatchObject({ kind: 'deny', reason: 'claim_condition_failed', status: 403, headers: [] });
    expect(decision.facts.detail).toBe(`rule all-operators: ${detail}`);
    expect(decision.facts.conditions?.filter((c) => !c.met)).toHaveLength(1);
    for (const value of Object.values(change)) {
      if (typeof value === 'string') expect(JSON.stringify(decision)).not.toContain(value);
    }
    expect(spicedbCalls).toBe(0);
  });

  it('reports every unmet condition; a missing scope outranks claims and carries the challenge', async () => {
    const { decision } = await decide('/v1/all', { groups: [] });
    expect(decision.reason).toBe('insufficient_scope');
    expect(decision.kind === 'deny' && decision.headers[0]?.[1]).toBe('Bearer realm="jwtauth", error="insufficient_scope", scope="profile"');
    expect(decision.facts.conditions?.filter((c) => !c.met).map((c) => c.condition)).toEqual(EVERY_CONDITION);
  });

  it('gates the matched rule: a failed condition denies, never falls through to a later rule on the route', async () => {
    expect((await decide('/v1/tenant', { tenant: 'acme' })).decision).toMatchObject({ kind: 'allow', facts: { rule: 'tenant-only' } });
    expect((await decide('/v1/tenant', { tenant: 'other' })).decision).toMatchObject({
      kind: 'deny',
      reason: 'claim_condition_failed',
      facts: { rule: 'tenant-only', detail: 'rule tenant-only: claim tenant is not the required value' },
    });
  });

  it('makes a rule with require and no checks a token rule', () => {
    const parsed = inboundSchema.parse({ rules: [{ name: 'r', match: { http: { path: '/a' } }, require: { scopes: ['x'] } }] });
    expect(parsed?.rules[0]?.auth).toBe('token');
  });
});

describe('require: configuration errors', () => {
  function problems(rule: Record<string, unknown>): string {
    try {
      validateConfig({ inbound: { rules: [{ name: 'r', match: { http: { path: '/a' } }, ...rule }] } }, 'test.yaml', '/tmp');
    } catch (error) {
      if (error instanceof ConfigError) return error.message;
      throw error;
    }
    throw new Error('expected the configuration to be refused');
  }
  const at = 'inbound.rules[0].require';

  it.each([
    ['an unknown operator', { claims: { tenant: { matches: 'a.*' } } }, `${at}.claims.tenant.matches: got "a.*"; not an operator; expected equals, oneOf, contains or present`],
    ['two operators on one claim', { claims: { tenant: { equals: 'a', oneOf: ['b'] } } }, `${at}.claims.tenant: got {"equals":"a","oneOf":["b"]}; expected exactly one operator`],
    ['no operator', { claims: { tenant: {} } }, `${at}.claims.tenant: got {}; expected exactly one operator`],
    ['present: false', { claims: { acr: { present: false } } }, `${at}.claims.acr.present: got false; expected present: true; a claim cannot be required to be absent`],
    ['an empty oneOf', { claims: { tier: { oneOf: [] } } }, `${at}.claims.tier.oneOf: got []; expected at least one value`],
    ['a list as a value', { claims: { tier: { equals: ['a'] } } }, `${at}.claims.tier.equals: got ["a"]; expected a string, number or boolean`],
    ['an empty claim step', { claims: { 'org..tier': { present: true } } }, `${at}.claims.org..tier: got {"present":true}; expected a claim name`],
    ['an empty claims map', { claims: {} }, `${at}.claims: got {}; expected at least one claim condition (to require none, drop claims)`],
    ['an empty scope list', { scopes: [] }, `${at}.scopes: got []; expected at least one scope (to require none, drop scopes)`],
    ['a scope with a space', { scopes: ['vm.read vm.write'] }, `${at}.scopes[0]: got "vm.read vm.write"; expected a scope: printable ASCII without spaces`],
    ['a scope with a quote', { scopes: ['a"b'] }, `${at}.scopes[0]: got "a\\"b"; expected a scope`],
    ['a repeated scope', { scopes: ['a', 'a'] }, `${at}.scopes: got ["a","a"]; expected each scope once`],
    ['an empty require', {}, `${at}: got {}; expected scopes, claims or both (to require nothing, drop require)`],
    ['an unknown key', { scope: ['a'] }, `${at}.scope: unknown key`],
  ])('refuses %s', (_, requirement, message) => {
    expect(problems({ auth: 'token', require: requirement })).toContain(message);
  });

  it('refuses require on an auth: none rule, which reads no token', () => {
    expect(problems({ auth: 'none', require: { scopes: ['a'] } })).toContain(`${at}: got {"scopes":["a"]}; expected no require: auth: none reads no token`);
  });
});

describe('check CLI', () => {
  it('shows a conditions: line with each condition and whether it was met', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'jwtauth-conditions-'));
    const key = await makeSigningKey('ES256', 'cond-1');
    writeFileSync(join(dir, 'jwks.json'), JSON.stringify(jwks(key)));
    const configFile = join(dir, 'jwtauth.yaml');
    writeFileSync(
      configFile,
      stringify({
        issuers: [{ name: 'auth', issuer: 'https://auth.test', audience: 'api', kind: 'external', jwks: { file: 'jwks.json' }, algorithms: ['ES256'] }],
        inbound: {
          rules: [{ name: 'vms', match: { http: { path: '/v1/vms' } }, require: { scopes: ['vm.read'], claims: { tenant: { equals: 'acme' } } } }],
        },
      }),
    );
    const token = await signToken(key, { iss: 'https://auth.test', aud: 'api', sub: 'alice', scope: 'vm.read', tenant: 'other', iat: nowSeconds(), exp: nowSeconds() + 300 });
    let out = '';
    const code = await runCli(['check', '--config', configFile, '--path', '/v1/vms', '--token', token], { out: (t) => (out += `${t}\n`), err: () => undefined, env: {} });
    expect(code).toBe(1);
    expect(out).toContain('conditions:\n  scope vm.read -> met\n  claim tenant equals "acme" -> not met\n');
    expect(out).toMatch(/decision:\s+DENY 403 claim_condition_failed/);
    expect(out).toMatch(/detail:\s+rule vms: claim tenant is not the required value/);
  }, 30_000);
});
