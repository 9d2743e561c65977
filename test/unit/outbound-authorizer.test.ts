import { describe, expect, it } from 'vitest';
import type { Decision } from '../../src/core/decision.js';
import type {
  PermissionAnswer,
  PermissionChecker,
  PermissionQuery,
  TokenRequest,
  TokenResult,
  TokenSource,
  TokenVerifier,
  VerifiedToken,
  VerifyResult,
} from '../../src/core/ports.js';
import type { RequestContext } from '../../src/core/request-context.js';
import { outboundSchema } from '../../src/outbound/config.js';
import type { OutboundConfigInput } from '../../src/outbound/config.js';
import { createOutboundAuthorizer } from '../../src/outbound/outbound-authorizer.js';

const OBO = 'x-jwtauth-on-behalf-of';
const INTERNAL = 'internal.tok.sig';
const INTERNAL_OTHER_AUD = 'internal.other.sig';
const EXTERNAL = 'external.tok.sig';
const EXPIRED = 'expired.tok.sig';
const UNKNOWN = 'unknown.tok.sig';

function verified(kind: 'internal' | 'external', subject: string, audience: string[]): VerifiedToken {
  return {
    issuer: kind === 'internal' ? 'mesh' : 'public',
    iss: `https://${kind}.example`,
    issuerKind: kind,
    subjectType: kind === 'internal' ? 'service' : 'user',
    subject,
    audience,
    expiresAt: 2_000_000_000,
    actor: undefined,
    claims: { sub: subject },
    fingerprint: `fp-${subject}`,
  };
}

/** A TokenVerifier double: internal tokens carry an audience; external ones are for the public API. */
class FakeVerifier implements TokenVerifier {
  calls: Array<[string, string | undefined]> = [];
  verify(token: string, expectedAudience?: string): Promise<VerifyResult> {
    this.calls.push([token, expectedAudience]);
    const table: Record<string, VerifiedToken> = {
      [INTERNAL]: verified('internal', 'billing', ['vmcontroller']),
      [INTERNAL_OTHER_AUD]: verified('internal', 'billing', ['gwadmin']),
      [EXTERNAL]: verified('external', 'alice', ['public-api']),
    };
    if (token === EXPIRED) return Promise.resolve({ ok: false, reason: 'token_expired' });
    const found = table[token];
    if (!found) return Promise.resolve({ ok: false, reason: 'unknown_issuer' });
    const wanted = expectedAudience ?? (found.issuerKind === 'internal' ? 'self' : 'public-api');
    if (!found.audience.includes(wanted)) return Promise.resolve({ ok: false, reason: 'wrong_audience' });
    return Promise.resolve({ ok: true, value: found });
  }
  ready(): boolean {
    return true;
  }
}

class FakeChecker implements PermissionChecker {
  queries: PermissionQuery[] = [];
  constructor(private readonly answer: (q: PermissionQuery) => PermissionAnswer) {}
  check(query: PermissionQuery): Promise<PermissionAnswer> {
    this.queries.push(query);
    return Promise.resolve(this.answer(query));
  }
  ready(): boolean {
    return true;
  }
}

class FakeTokens implements TokenSource {
  readonly name = 'fake';
  requests: TokenRequest[] = [];
  constructor(private readonly result: (r: TokenRequest) => TokenResult = (r) => ({ ok: true, value: { token: `minted-${r.kind}-${r.audience}`, issuedAt: 1, expiresAt: 2 } })) {}
  issue(request: TokenRequest): Promise<TokenResult> {
    this.requests.push(request);
    return Promise.resolve(this.result(request));
  }
}

function request(options: {
  headers?: Record<string, string>;
  duplicate?: string[];
  authority?: string;
  ext?: Record<string, string>;
}): RequestContext {
  return {
    direction: 'outbound',
    requestId: 'r1',
    authority: options.authority ?? 'vmcontroller',
    method: 'POST',
    path: '/vm.v1.VMs/Create',
    query: '',
    grpc: undefined,
    headers: new Map(Object.entries(options.headers ?? {})),
    duplicateHeaders: new Set(options.duplicate ?? []),
    peerPrincipal: undefined,
    contextExtensions: options.ext ?? { direction: 'outbound', audience: 'vmcontroller' },
    body: undefined,
  };
}

const CONFIG: OutboundConfigInput = {
  upstreams: [
    { audience: 'vmcontroller', authorities: ['vmcontroller', 'vmcontroller.svc:8443'] },
    { audience: 'gwadmin', authorities: ['gwadmin'] },
    { audience: 'routed-only' },
  ],
  onBehalfOf: {
    allowedCallers: ['gwadmin'],
    checks: [{ resource: 'cloud:{header.x-cloud-id}', permission: 'create_saga', subject: 'user:{subject}' }],
  },
};

function setup(
  options: {
    config?: OutboundConfigInput;
    serviceName?: string;
    checker?: FakeChecker;
    tokens?: FakeTokens;
  } = {},
) {
  const verifier = new FakeVerifier();
  const checker = options.checker ?? new FakeChecker(() => ({ ok: true, value: { permissionship: 'allowed', cached: false } }));
  const tokens = options.tokens ?? new FakeTokens();
  const config = outboundSchema.parse(options.config ?? CONFIG);
  if (!config) throw new Error('config');
  const authorizer = createOutboundAuthorizer(config, {
    verifier,
    checker,
    tokens,
    serviceName: options.serviceName ?? 'gwadmin', serviceSubjectType: 'service',
    maxTokenBytes: 8192,
  }, { root: undefined, maxBytes: 65_536 });
  return { authorizer, verifier, checker, tokens };
}

function authorization(decision: Decision): string | undefined {
  if (decision.kind !== 'allow') return undefined;
  return decision.setHeaders.find(([name]) => name === 'authorization')?.[1];
}

describe('outbound classification', () => {
  it('(a) passes an internal token for this upstream unchanged', async () => {
    const { authorizer, tokens } = setup();
    const d = await authorizer.decide(request({ headers: { authorization: `Bearer ${INTERNAL}` } }));
    expect(d).toMatchObject({ kind: 'allow', reason: 'internal_token_passed', facts: { tokenKind: 'internal', audience: 'vmcontroller' } });
    expect(authorization(d)).toBeUndefined();
    expect(tokens.requests).toEqual([]);
  });

  it('(b) exchanges an external user token for this upstream and replaces the header', async () => {
    const { authorizer, tokens } = setup();
    const d = await authorizer.decide(request({ headers: { authorization: `Bearer ${EXTERNAL}` } }));
    expect(d).toMatchObject({ kind: 'allow', reason: 'user_token_exchanged', facts: { subject: 'alice', tokenKind: 'external' } });
    expect(authorization(d)).toBe('Bearer minted-exchange-vmcontroller');
    expect(tokens.requests).toHaveLength(1);
    const sent = tokens.requests[0];
    expect(sent).toMatchObject({ kind: 'exchange', audience: 'vmcontroller', subjectToken: EXTERNAL });
    // The cache key is the fingerprint the verifier computed once, never the token itself.
    expect(sent?.kind === 'exchange' && sent.subjectTokenFingerprint).toBe('fp-alice');
  });

  it('(c) attaches a service token when the call has none, for the route’s audience', async () => {
    const { authorizer, tokens } = setup();
    const d = await authorizer.decide(request({}));
    expect(d).toMatchObject({ kind: 'allow', reason: 'service_token_attached', facts: { subject: 'gwadmin', subjectType: 'service', tokenKind: 'service' } });
    expect(authorization(d)).toBe('Bearer minted-service-vmcontroller');
    expect(tokens.requests).toEqual([{ kind: 'service', audience: 'vmcontroller' }]);
  });

  it.each([
    ['an expired token', { authorization: `Bearer ${EXPIRED}` }, [], 'token_expired'],
    ['a token from an unknown issuer', { authorization: `Bearer ${UNKNOWN}` }, [], 'unknown_issuer'],
    ['an internal token for another audience', { authorization: `Bearer ${INTERNAL_OTHER_AUD}` }, [], 'wrong_audience'],
    ['a non-bearer Authorization header', { authorization: 'Basic dXNlcjpwYXNz' }, [], 'malformed_authorization'],
    ['a bearer value that is not a token', { authorization: 'Bearer a b' }, [], 'malformed_authorization'],
    ['two Authorization headers', { authorization: `Bearer ${INTERNAL},Bearer ${EXTERNAL}` }, ['authorization'], 'duplicate_authorization'],
  ] as const)('(d) denies %s with 401 and never swaps in a service token', async (_name, headers, duplicate, reason) => {
    const { authorizer, tokens } = setup();
    const d = await authorizer.decide(request({ headers, duplicate: [...duplicate] }));
    expect(d).toMatchObject({ kind: 'deny', reason, status: 401 });
    expect(tokens.requests).toEqual([]);
  });

  it('denies when the token source fails, with the source’s reason, and sets no header', async () => {
    const tokens = new FakeTokens(() => ({ ok: false, reason: 'token_source_unavailable', detail: 'issuer down' }));
    const { authorizer } = setup({ tokens });
    const d = await authorizer.decide(request({}));
    expect(d).toMatchObject({ kind: 'deny', reason: 'token_source_unavailable', status: 503, facts: { detail: 'issuer down' } });
  });

  it('denies (never allows) when a port throws', async () => {
    const tokens = new FakeTokens(() => {
      throw new Error('boom');
    });
    const { authorizer } = setup({ tokens });
    expect(await authorizer.decide(request({}))).toMatchObject({ kind: 'deny', reason: 'internal_error', status: 500 });
  });
});

describe('outbound upstream allow-list', () => {
  it('denies an audience that is not listed', async () => {
    const { authorizer, tokens } = setup();
    const d = await authorizer.decide(request({ ext: { direction: 'outbound', audience: 'evil' } }));
    expect(d).toMatchObject({ kind: 'deny', reason: 'unknown_upstream', status: 403 });
    expect(tokens.requests).toEqual([]);
  });

  it('denies an unknown authority when the route names no audience', async () => {
    const { authorizer, tokens } = setup();
    const d = await authorizer.decide(request({ authority: 'attacker.example', ext: { direction: 'outbound' } }));
    expect(d).toMatchObject({ kind: 'deny', reason: 'unknown_upstream' });
    expect(tokens.requests).toEqual([]);
  });

  it('maps a listed authority to its audience when the route names none', async () => {
    const { authorizer, tokens } = setup();
    const d = await authorizer.decide(request({ authority: 'vmcontroller.svc:8443', ext: { direction: 'outbound' } }));
    expect(d).toMatchObject({ kind: 'allow', reason: 'service_token_attached' });
    expect(tokens.requests).toEqual([{ kind: 'service', audience: 'vmcontroller' }]);
  });

  it('denies a route audience whose listed authorities do not include the request’s', async () => {
    const { authorizer } = setup();
    const d = await authorizer.decide(request({ authority: 'elsewhere.example' }));
    expect(d).toMatchObject({ kind: 'deny', reason: 'unknown_upstream' });
  });

  it('denies a route audience sent to an authority that belongs to another upstream', async () => {
    const { authorizer } = setup();
    const d = await authorizer.decide(request({ authority: 'gwadmin', ext: { direction: 'outbound', audience: 'vmcontroller' } }));
    expect(d).toMatchObject({ kind: 'deny', reason: 'unknown_upstream' });
  });

  it('never sends a token for one upstream to another: a route naming an upstream that lists no authorities is refused at an authority listed for another', async () => {
    const { authorizer, tokens } = setup();
    const d = await authorizer.decide(request({ authority: 'gwadmin', ext: { direction: 'outbound', audience: 'routed-only' } }));
    expect(d).toMatchObject({ kind: 'deny', reason: 'unknown_upstream', status: 403 });
    expect(authorization(d)).toBeUndefined();
    const withToken = await authorizer.decide(request({ authority: 'vmcontroller.svc:8443', ext: { direction: 'outbound', audience: 'routed-only' }, headers: { authorization: `Bearer ${EXTERNAL}` } }));
    expect(withToken).toMatchObject({ kind: 'deny', reason: 'unknown_upstream' });
    expect(tokens.requests).toEqual([]);
  });

  it('takes an empty audience in route config as none: the authority decides', async () => {
    const { authorizer, tokens } = setup();
    expect(await authorizer.decide(request({ authority: 'gwadmin', ext: { direction: 'outbound', audience: '' } }))).toMatchObject({ kind: 'allow', reason: 'service_token_attached' });
    expect(tokens.requests).toEqual([{ kind: 'service', audience: 'gwadmin' }]);
    expect(await authorizer.decide(request({ authority: 'elsewhere', ext: { direction: 'outbound', audience: '' } }))).toMatchObject({
      kind: 'deny',
      reason: 'unknown_upstream',
      facts: { detail: 'no audience for authority elsewhere' },
    });
    expect(await authorizer.decide(request({ authority: '', ext: { direction: 'outbound' } }))).toMatchObject({ facts: { detail: 'no audience for authority (none)' } });
  });

  it('accepts an upstream that lists one authority twice', () => {
    expect(outboundSchema.safeParse({ upstreams: [{ audience: 'a', authorities: ['a.svc', 'a.svc'] }] }).success).toBe(true);
  });

  it('accepts any authority for an upstream that lists none, when the route names it', async () => {
    const { authorizer, tokens } = setup();
    const d = await authorizer.decide(request({ authority: '127.0.0.1:18080', ext: { direction: 'outbound', audience: 'routed-only' } }));
    expect(d).toMatchObject({ kind: 'allow' });
    expect(tokens.requests).toEqual([{ kind: 'service', audience: 'routed-only' }]);
  });

  it('rejects a config that lists one audience twice', () => {
    const result = outboundSchema.safeParse({ upstreams: [{ audience: 'a', authorities: ['a.svc'] }, { audience: 'b' }, { audience: 'a' }] });
    expect(result.success ? [] : result.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`)).toEqual(['upstreams.2.audience: audience a is listed twice']);
  });

  it('rejects a config that maps one authority to two upstreams', () => {
    const result = outboundSchema.safeParse({
      upstreams: [
        { audience: 'a1', authorities: ['shared'] },
        { audience: 'a2', authorities: ['shared'] },
      ],
    });
    expect(result.success).toBe(false);
  });
});

describe('outbound on-behalf-of', () => {
  const oboRequest = (user = 'cloud-teleport-aleksander.rykalin', extra: Record<string, string> = {}) =>
    request({ headers: { [OBO]: user, 'x-cloud-id': 'cl0', ...extra } });

  it('attaches an on-behalf-of token when the check allows, checking the escaped user id', async () => {
    const { authorizer, checker, tokens } = setup();
    const d = await authorizer.decide(oboRequest());
    expect(d).toMatchObject({ kind: 'allow', reason: 'on_behalf_of_token_attached', facts: { subject: 'cloud-teleport-aleksander.rykalin' } });
    expect(d.kind === 'allow' && d.removeHeaders).toContain(OBO);
    expect(authorization(d)).toBe('Bearer minted-on_behalf_of-vmcontroller');
    expect(checker.queries).toHaveLength(1);
    expect(checker.queries[0]).toMatchObject({
      resource: { type: 'cloud', id: 'cl0' },
      permission: 'create_saga',
      subject: { type: 'user', id: '=cloud-teleport-aleksander=2Erykalin' },
    });
    // The token names the raw user; only the SpiceDB query is escaped.
    expect(tokens.requests).toEqual([{ kind: 'on_behalf_of', audience: 'vmcontroller', user: 'cloud-teleport-aleksander.rykalin', userType: 'user' }]);
  });

  it('denies with on_behalf_of_not_permitted when SpiceDB says no, and gets no token', async () => {
    const checker = new FakeChecker(() => ({ ok: true, value: { permissionship: 'denied', cached: false } }));
    const { authorizer, tokens } = setup({ checker });
    const d = await authorizer.decide(oboRequest());
    expect(d).toMatchObject({ kind: 'deny', reason: 'on_behalf_of_not_permitted', status: 403 });
    // The decision log names the user the denial was about.
    expect(d.facts).toMatchObject({ subject: 'cloud-teleport-aleksander.rykalin', subjectType: 'user', tokenKind: 'on_behalf_of' });
    expect(tokens.requests).toEqual([]);
  });

  it('treats a conditional answer as a denial', async () => {
    const checker = new FakeChecker(() => ({ ok: true, value: { permissionship: 'conditional', cached: false } }));
    const { authorizer } = setup({ checker });
    expect(await authorizer.decide(oboRequest())).toMatchObject({ kind: 'deny', reason: 'conditional_permission' });
  });

  it('passes a SpiceDB outage through as its retryable reason', async () => {
    const checker = new FakeChecker(() => ({ ok: false, reason: 'permission_backend_unavailable' }));
    const { authorizer } = setup({ checker });
    expect(await authorizer.decide(oboRequest())).toMatchObject({ kind: 'deny', reason: 'permission_backend_unavailable', status: 503 });
  });

  it('denies a caller that may not use on-behalf-of, before asking SpiceDB', async () => {
    const { authorizer, checker, tokens } = setup({ serviceName: 'billing' });
    const d = await authorizer.decide(oboRequest());
    expect(d).toMatchObject({ kind: 'deny', reason: 'on_behalf_of_not_allowed_for_caller', status: 403 });
    expect(checker.queries).toEqual([]);
    expect(tokens.requests).toEqual([]);
  });

  it('takes an empty caller in route config as none: the service itself is the caller', async () => {
    const named = (caller: string) => request({ headers: { [OBO]: 'alice', 'x-cloud-id': 'cl0' }, ext: { direction: 'outbound', audience: 'vmcontroller', caller } });
    expect(await setup({ serviceName: 'gwadmin' }).authorizer.decide(named(''))).toMatchObject({ kind: 'allow', reason: 'on_behalf_of_token_attached' });
    expect(await setup({ serviceName: 'billing' }).authorizer.decide(named(''))).toMatchObject({
      kind: 'deny',
      reason: 'on_behalf_of_not_allowed_for_caller',
      facts: { detail: 'billing may not act on behalf of users' },
    });
  });

  it('takes a user id of up to maxUserIdLength visible characters, and no longer', async () => {
    const { authorizer, checker } = setup();
    const obo = (user: string) => authorizer.decide(request({ headers: { [OBO]: user, 'x-cloud-id': 'cl0' } }));
    expect(await obo('u'.repeat(256))).toMatchObject({ kind: 'allow' });
    expect(await obo('u'.repeat(257))).toMatchObject({ kind: 'deny', reason: 'invalid_header_value', facts: { detail: 'x-jwtauth-on-behalf-of must be a user id of 1-256 visible ASCII characters' } });
    expect(await obo('al ice')).toMatchObject({ kind: 'deny', reason: 'invalid_header_value' });
    expect(checker.queries).toHaveLength(1);
  });

  it('lets route config name the caller', async () => {
    const { authorizer } = setup({ serviceName: 'billing' });
    const d = await authorizer.decide(
      request({ headers: { [OBO]: 'alice', 'x-cloud-id': 'cl0' }, ext: { direction: 'outbound', audience: 'vmcontroller', caller: 'gwadmin' } }),
    );
    expect(d).toMatchObject({ kind: 'allow', reason: 'on_behalf_of_token_attached' });
  });

  it('denies when on-behalf-of is not configured at all', async () => {
    const { authorizer } = setup({ config: { upstreams: [{ audience: 'vmcontroller' }] } });
    expect(await authorizer.decide(oboRequest())).toMatchObject({ kind: 'deny', reason: 'on_behalf_of_not_allowed_for_caller' });
  });

  it('denies when a value the check needs is missing', async () => {
    const { authorizer, checker } = setup();
    const d = await authorizer.decide(request({ headers: { [OBO]: 'alice' } }));
    expect(d).toMatchObject({ kind: 'deny', reason: 'invalid_check_input' });
    expect(checker.queries).toEqual([]);
  });

  it.each([['', 'empty'], ['al ice', 'a space'], ['x'.repeat(257), 'too long']])('denies a user id that is %s (%s)', async (user) => {
    const { authorizer } = setup();
    expect(await authorizer.decide(oboRequest(user))).toMatchObject({ kind: 'deny', reason: 'invalid_header_value' });
  });

  it('denies two on-behalf-of headers', async () => {
    const { authorizer } = setup();
    const d = await authorizer.decide(request({ headers: { [OBO]: 'alice,bob', 'x-cloud-id': 'cl0' }, duplicate: [OBO] }));
    expect(d).toMatchObject({ kind: 'deny', reason: 'invalid_header_value' });
  });

  it('denies a request that carries a token and also names a user', async () => {
    const { authorizer, tokens } = setup();
    const d = await authorizer.decide(request({ headers: { authorization: `Bearer ${EXTERNAL}`, [OBO]: 'alice', 'x-cloud-id': 'cl0' } }));
    expect(d).toMatchObject({ kind: 'deny', reason: 'malformed_request' });
    expect(tokens.requests).toEqual([]);
  });

  it('removes the on-behalf-of header on every kind of allow', async () => {
    const { authorizer } = setup();
    const decisions = [
      await authorizer.decide(request({ headers: { authorization: `Bearer ${INTERNAL}` } })),
      await authorizer.decide(request({ headers: { authorization: `Bearer ${EXTERNAL}` } })),
      await authorizer.decide(request({})),
      await authorizer.decide(oboRequest()),
    ];
    for (const d of decisions) {
      expect(d.kind).toBe('allow');
      expect(d.kind === 'allow' && d.removeHeaders).toContain(OBO);
    }
  });

  it('removes a configured header name instead of the default', async () => {
    const { authorizer } = setup({
      config: { ...CONFIG, onBehalfOf: { header: 'X-Acting-For', allowedCallers: [], checks: [] } },
    });
    const d = await authorizer.decide(request({}));
    expect(d.kind === 'allow' && d.removeHeaders).toEqual(['x-acting-for']);
  });

  it.each([
    ['the default name', OBO],
    ['a configured name', 'x-acting-for'],
  ])('denies an on-behalf-of header under %s that Envoy joined with a comma (sent twice)', async (_name, header) => {
    const { authorizer, checker } = setup({ config: { ...CONFIG, onBehalfOf: { ...CONFIG.onBehalfOf, header } } });
    const d = await authorizer.decide(request({ headers: { [header]: 'alice,bob', 'x-cloud-id': 'cl0' } }));
    expect(d).toMatchObject({ kind: 'deny', reason: 'invalid_header_value' });
    expect(checker.queries).toEqual([]);
  });

  it('rejects a config that allows callers without any check', () => {
    expect(outboundSchema.safeParse({ upstreams: [], onBehalfOf: { allowedCallers: ['gwadmin'] } }).success).toBe(false);
  });
});
