import { describe, expect, it } from 'vitest';
import { IDENTITY_HEADER_NAMES } from '../../src/core/identity-headers.js';
import type { PermissionAnswer, PermissionChecker, PermissionQuery, TokenVerifier, VerifiedToken, VerifyResult } from '../../src/core/ports.js';
import type { RequestContext } from '../../src/core/request-context.js';
import { inboundSchema } from '../../src/inbound/config.js';
import { createInboundAuthorizer } from '../../src/inbound/inbound-authorizer.js';

const TOKEN = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln';

function req(method: string, path: string, headers: Record<string, string> = {}, grpc?: [string, string], ext: Record<string, string> = {}): RequestContext {
  return {
    direction: 'inbound',
    requestId: 'r',
    authority: 'gw.local',
    method,
    path,
    query: '',
    grpc: grpc ? { service: grpc[0], method: grpc[1] } : undefined,
    headers: new Map(Object.entries(headers)),
    duplicateHeaders: new Set(),
    peerPrincipal: undefined,
    contextExtensions: { direction: 'inbound', ...ext },
    body: undefined,
  };
}
const bearer = { authorization: `Bearer ${TOKEN}` };

function identity(subject: string, extra: Partial<VerifiedToken> = {}): VerifiedToken {
  return {
    issuer: 'teleport',
    iss: 'https://teleport',
    issuerKind: 'external',
    subjectType: 'user',
    subject,
    audience: ['gwadmin'],
    expiresAt: 2e9,
    actor: undefined,
    claims: { sub: subject },
    fingerprint: `fp-${subject}`,
    ...extra,
  };
}

class FakeVerifier implements TokenVerifier {
  result: VerifyResult = { ok: true, value: identity('cloud-teleport-aleksander.rykalin') };
  calls: Array<{ token: string; audience: string | undefined }> = [];
  verify(token: string, audience?: string): Promise<VerifyResult> {
    this.calls.push({ token, audience });
    return Promise.resolve(this.result);
  }
  ready(): boolean {
    return true;
  }
}

class FakeChecker implements PermissionChecker {
  queries: PermissionQuery[] = [];
  answer: (q: PermissionQuery) => PermissionAnswer = () => ({ ok: true, value: { permissionship: 'allowed', cached: false } });
  check(query: PermissionQuery): Promise<PermissionAnswer> {
    this.queries.push(query);
    return Promise.resolve(this.answer(query));
  }
  ready(): boolean {
    return true;
  }
}

const RULES = {
  rules: [
    {
      name: 'write-relationships',
      match: { grpc: { service: 'authzed.api.v1.PermissionsService', method: 'WriteRelationships' } },
      issuerKinds: ['internal'],
      checks: [{ resource: 'platform:spicedb', permission: 'write_relationships' }],
    },
    {
      name: 'create-saga',
      match: { http: { methods: ['POST'], path: '/v1/clouds/{cloud}/sagas' } },
      checks: [
        { resource: 'cloud:{path.cloud}', permission: 'create_saga' },
        { resource: 'cloud:{path.cloud}', permission: 'view', consistency: 'fully_consistent' },
      ],
    },
    { name: 'dry', match: { http: { path: '/v1/dry' } }, dryRun: true, checks: [{ resource: 'cloud:cl0', permission: 'view' }] },
    { name: 'me', match: { http: { path: '/v1/me' } }, auth: 'token', audience: 'gwadmin-api' },
    { name: 'health', match: { http: { path: '/healthz' } }, auth: 'none' },
    { name: 'by-header', match: { http: { path: '/v1/ns' } }, checks: [{ resource: 'cloud:{header.x-cloud-id}', permission: 'view' }] },
  ],
};

function setup(config: unknown = RULES) {
  const verifier = new FakeVerifier();
  const checker = new FakeChecker();
  const authorizer = createInboundAuthorizer(inboundSchema.parse(config)!, {
    verifier,
    checker,
    maxTokenBytes: 8192,
  }, { root: undefined, maxBytes: 65_536 });
  return { verifier, checker, authorizer };
}

describe('inbound authorizer', () => {
  it('allows when every check passes, sets identity headers and strips all spoofable ones', async () => {
    const { authorizer, checker } = setup();
    const decision = await authorizer.decide(req('POST', '/v1/clouds/cl0/sagas', bearer));
    expect(decision).toMatchObject({
      kind: 'allow',
      reason: 'allowed',
      setHeaders: [
        ['x-jwtauth-subject', 'cloud-teleport-aleksander.rykalin'],
        ['x-jwtauth-subject-type', 'user'],
        ['x-jwtauth-issuer', 'teleport'],
      ],
      facts: { rule: 'create-saga', subject: 'cloud-teleport-aleksander.rykalin', issuer: 'teleport' },
    });
    if (decision.kind !== 'allow') throw new Error('expected allow');
    expect([...decision.removeHeaders].sort()).toEqual([...IDENTITY_HEADER_NAMES].sort());
    expect(checker.queries).toEqual([
      {
        resource: { type: 'cloud', id: 'cl0' },
        permission: 'create_saga',
        subject: { type: 'user', id: '=cloud-teleport-aleksander=2Erykalin' },
        consistency: { kind: 'minimize_latency' },
      },
      expect.objectContaining({ permission: 'view', consistency: { kind: 'fully_consistent' } }),
    ]);
    expect(decision.facts.checks).toEqual([
      { resource: 'cloud:cl0', permission: 'create_saga', subject: 'user:=cloud-teleport-aleksander=2Erykalin', result: 'allowed', cached: false },
      { resource: 'cloud:cl0', permission: 'view', subject: 'user:=cloud-teleport-aleksander=2Erykalin', result: 'allowed', cached: false },
    ]);
    expect(JSON.stringify(decision)).not.toContain(TOKEN);
  });

  it('sets the actor header when the token acts for someone', async () => {
    const { authorizer, verifier } = setup();
    verifier.result = { ok: true, value: identity('alice', { actor: 'gwadmin' }) };
    const decision = await authorizer.decide(req('GET', '/v1/me', bearer));
    expect(decision.kind === 'allow' && decision.setHeaders).toContainEqual(['x-jwtauth-actor', 'gwadmin']);
  });

  it('denies with 403 when any check is denied, even if another failed', async () => {
    const { authorizer, checker } = setup();
    checker.answer = (q) => (q.permission === 'create_saga' ? { ok: true, value: { permissionship: 'denied', cached: true } } : { ok: false, reason: 'permission_backend_unavailable' });
    const decision = await authorizer.decide(req('POST', '/v1/clouds/cl0/sagas', bearer));
    expect(decision).toMatchObject({ kind: 'deny', reason: 'permission_denied', status: 403 });
    expect(decision.facts.checks?.map((c) => c.result)).toEqual(['denied', 'permission_backend_unavailable']);
  });

  it('treats CONDITIONAL as a deny', async () => {
    const { authorizer, checker } = setup();
    checker.answer = () => ({ ok: true, value: { permissionship: 'conditional', cached: false } });
    expect(await authorizer.decide(req('POST', '/v1/clouds/cl0/sagas', bearer))).toMatchObject({ kind: 'deny', reason: 'conditional_permission', status: 403 });
  });

  it('answers 503 when SpiceDB cannot answer, never allows', async () => {
    const { authorizer, checker } = setup();
    for (const reason of ['permission_backend_unavailable', 'permission_backend_timeout', 'permission_backend_overloaded'] as const) {
      checker.answer = () => ({ ok: false, reason });
      expect(await authorizer.decide(req('POST', '/v1/clouds/cl0/sagas', bearer))).toMatchObject({ kind: 'deny', reason, status: 503 });
    }
  });

  it('401s with a bare challenge when the token is missing and invalid_token when it is bad', async () => {
    const { authorizer, verifier } = setup();
    expect(await authorizer.decide(req('POST', '/v1/clouds/cl0/sagas'))).toMatchObject({
      status: 401,
      reason: 'missing_token',
      headers: [['www-authenticate', 'Bearer realm="jwtauth"']],
    });
    verifier.result = { ok: false, reason: 'token_expired' };
    expect(await authorizer.decide(req('POST', '/v1/clouds/cl0/sagas', bearer))).toMatchObject({
      status: 401,
      reason: 'token_expired',
      headers: [['www-authenticate', 'Bearer realm="jwtauth", error="invalid_token"']],
    });
    expect(await authorizer.decide(req('POST', '/v1/clouds/cl0/sagas', { authorization: 'Basic abc' }))).toMatchObject({ status: 401, reason: 'malformed_authorization' });
    verifier.result = { ok: false, reason: 'keys_unavailable' };
    expect(await authorizer.decide(req('POST', '/v1/clouds/cl0/sagas', bearer))).toMatchObject({ status: 503, reason: 'keys_unavailable', headers: [] });
  });

  it('refuses a token over maxTokenBytes, or not a bearer b64token, without verifying it', async () => {
    const { authorizer, verifier } = setup();
    const sagas = (authorization: string) => authorizer.decide(req('POST', '/v1/clouds/cl0/sagas', { authorization }));
    expect(await sagas(`Bearer ${'a'.repeat(8193)}`)).toMatchObject({ status: 401, reason: 'token_too_large' });
    for (const bad of ['Bearer', 'Bearer ', 'Bearer a b', 'Bearer a,b', 'Bearer =abc', 'Token abc']) {
      expect(await sagas(bad), bad).toMatchObject({ status: 401, reason: 'malformed_authorization' });
    }
    expect(verifier.calls).toEqual([]);
    expect(await sagas(`Bearer ${'a'.repeat(8192)}`)).toMatchObject({ kind: 'allow' });
    expect(await sagas(`bEaReR  ${TOKEN} `)).toMatchObject({ kind: 'allow' });
    expect(await sagas('Bearer a-b_c.d~e+f/g==')).toMatchObject({ kind: 'allow' });
    expect(verifier.calls.map((call) => call.token)).toEqual(['a'.repeat(8192), TOKEN, 'a-b_c.d~e+f/g==']);
  });

  it('rejects a duplicated Authorization header without verifying either', async () => {
    const { authorizer, verifier } = setup();
    const request = { ...req('POST', '/v1/clouds/cl0/sagas', bearer), duplicateHeaders: new Set(['authorization']) };
    expect(await authorizer.decide(request)).toMatchObject({ status: 401, reason: 'duplicate_authorization' });
    expect(verifier.calls).toHaveLength(0);
  });

  it('checks the seed WriteRelationships gRPC call and accepts only internal tokens there', async () => {
    const { authorizer, verifier, checker } = setup();
    const call = req('POST', '/authzed.api.v1.PermissionsService/WriteRelationships', bearer, ['authzed.api.v1.PermissionsService', 'WriteRelationships']);
    expect(await authorizer.decide(call)).toMatchObject({ status: 401, reason: 'external_token_not_accepted' });
    verifier.result = { ok: true, value: identity('vmcontroller', { issuerKind: 'internal', subjectType: 'service', issuer: 'mesh' }) };
    expect(await authorizer.decide(call)).toMatchObject({ kind: 'allow', facts: { rule: 'write-relationships' } });
    expect(checker.queries.at(-1)).toMatchObject({ resource: { type: 'platform', id: 'spicedb' }, subject: { type: 'service', id: 'vmcontroller' } });
  });

  it('passes the audience from the rule, else from context_extensions, to the verifier', async () => {
    const { authorizer, verifier } = setup();
    await authorizer.decide(req('GET', '/v1/me', bearer, undefined, { audience: 'ignored' }));
    await authorizer.decide(req('POST', '/v1/clouds/cl0/sagas', bearer, undefined, { audience: 'gwadmin-ext' }));
    await authorizer.decide(req('POST', '/v1/clouds/cl0/sagas', bearer));
    expect(verifier.calls.map((c) => c.audience)).toEqual(['gwadmin-api', 'gwadmin-ext', undefined]);
  });

  it('allows public routes without a token but still strips identity headers', async () => {
    const { authorizer, verifier } = setup();
    const decision = await authorizer.decide(req('GET', '/healthz', { 'x-jwtauth-subject': 'root' }));
    expect(decision).toMatchObject({ kind: 'allow', reason: 'public_route', setHeaders: [] });
    expect(decision.kind === 'allow' && decision.removeHeaders).toEqual(IDENTITY_HEADER_NAMES);
    expect(verifier.calls).toHaveLength(0);
  });

  it('denies unmatched requests by default, and honours default: token', async () => {
    expect(await setup().authorizer.decide(req('GET', '/nope', bearer))).toMatchObject({ status: 403, reason: 'no_matching_rule' });
    const tokenDefault = setup({ ...RULES, default: 'token' });
    expect(await tokenDefault.authorizer.decide(req('GET', '/nope', bearer))).toMatchObject({ kind: 'allow', reason: 'default_allow', facts: { subject: 'cloud-teleport-aleksander.rykalin' } });
    expect(await tokenDefault.authorizer.decide(req('GET', '/nope'))).toMatchObject({ status: 401 });
  });

  it('with default: allow, lets an unmatched request through with no identity and every identity header stripped', async () => {
    const { authorizer, verifier } = setup({ ...RULES, default: 'allow' });
    const decision = await authorizer.decide(req('GET', '/nope', { ...bearer, 'x-jwtauth-subject': 'root' }));
    expect(decision).toMatchObject({ kind: 'allow', reason: 'default_allow', setHeaders: [], facts: {} });
    expect(decision.kind === 'allow' && [...decision.removeHeaders].sort()).toEqual([...IDENTITY_HEADER_NAMES].sort());
    expect(verifier.calls).toHaveLength(0);
  });

  it('takes tokens only from the issuers a rule names, and only of the kinds it names', async () => {
    const { authorizer, verifier, checker } = setup({
      rules: [
        { name: 'mesh-only', match: { http: { path: '/v1/mesh' } }, issuers: ['mesh'], checks: [{ resource: 'cloud:cl0', permission: 'view' }] },
        { name: 'external-only', match: { http: { path: '/v1/ext' } }, issuerKinds: ['external'], auth: 'token' },
      ],
    });
    expect(await authorizer.decide(req('GET', '/v1/mesh', bearer))).toMatchObject({ kind: 'deny', status: 401, reason: 'unknown_issuer', facts: { detail: 'rule mesh-only does not take tokens from teleport' } });
    expect(checker.queries).toEqual([]);
    verifier.result = { ok: true, value: identity('vmcontroller', { issuerKind: 'internal', subjectType: 'service', issuer: 'mesh' }) };
    expect(await authorizer.decide(req('GET', '/v1/mesh', bearer))).toMatchObject({ kind: 'allow', facts: { rule: 'mesh-only' } });
    expect(await authorizer.decide(req('GET', '/v1/ext', bearer))).toMatchObject({ kind: 'deny', status: 401, reason: 'unknown_issuer', facts: { detail: 'rule external-only does not take internal tokens' } });
  });

  it('marks decisions of a dry-run rule without changing them', async () => {
    const { authorizer, checker } = setup();
    checker.answer = () => ({ ok: true, value: { permissionship: 'denied', cached: false } });
    expect(await authorizer.decide(req('GET', '/v1/dry', bearer))).toMatchObject({ kind: 'deny', reason: 'permission_denied', facts: { dryRun: true, rule: 'dry' } });
    const other = await authorizer.decide(req('POST', '/v1/clouds/cl0/sagas', bearer));
    expect(other.facts.dryRun).toBeUndefined();
  });

  it('denies with invalid_check_input when a check cannot be built, without calling SpiceDB', async () => {
    const { authorizer, checker } = setup();
    expect(await authorizer.decide(req('GET', '/v1/ns', bearer))).toMatchObject({ status: 403, reason: 'invalid_check_input' });
    expect(await authorizer.decide(req('GET', '/v1/ns', { ...bearer, 'x-cloud-id': 'a b' }))).toMatchObject({ reason: 'invalid_check_input' });
    expect(checker.queries).toHaveLength(0);
  });

  it('refuses subjects that cannot travel as a header value', async () => {
    const { authorizer, verifier } = setup();
    verifier.result = { ok: true, value: identity('alice\r\nx-jwtauth-subject: root') };
    expect(await authorizer.decide(req('GET', '/v1/me', bearer))).toMatchObject({ status: 401, reason: 'invalid_claim' });
  });

  it('turns a throwing port into a deny, never an exception', async () => {
    const { authorizer, checker } = setup();
    checker.check = () => Promise.reject(new Error('boom'));
    expect(await authorizer.decide(req('POST', '/v1/clouds/cl0/sagas', bearer))).toMatchObject({ kind: 'deny', reason: 'internal_error', status: 500 });
  });
});
