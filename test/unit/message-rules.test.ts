/**
 * Rules that authorize what a call does: `{body.…}` templates over the request message, through
 * the pipeline serve builds (config → compiled rules → body reader → checks), with fake ports.
 * The Envoy path of the same attack is in test/e2e/envoy-body.test.ts.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { frameMessage } from '../../src/body/grpc-frame.js';
import { validateConfig } from '../../src/config/load.js';
import type { PermissionAnswer, PermissionChecker, PermissionQuery, TokenSource, TokenVerifier, VerifiedToken, VerifyResult } from '../../src/core/ports.js';
import type { RequestBody, RequestContext } from '../../src/core/request-context.js';
import { buildPipeline } from '../../src/lifecycle/pipeline.js';

const DEMO = join(dirname(fileURLToPath(import.meta.url)), '../../examples/demo');
const SERVICE = 'demo.vmcontroller.v1.VmController';
// keepCase: field names as written in the .proto, as the sidecar's descriptors keep them.
const proto = new protobuf.Root().loadSync(join(DEMO, 'vmcontroller.proto'), { keepCase: true });
const CreateNamespaceRequest = proto.lookupType('demo.vmcontroller.v1.CreateNamespaceRequest');

const alice: VerifiedToken = {
  issuer: 'auth',
  iss: 'https://auth.example',
  issuerKind: 'internal',
  subjectType: 'user',
  subject: 'alice',
  audience: ['vmcontroller'],
  expiresAt: 2e9,
  actor: undefined,
  claims: { sub: 'alice' },
  fingerprint: 'fp-alice',
};

class Verifier implements TokenVerifier {
  verify(): Promise<VerifyResult> {
    return Promise.resolve({ ok: true, value: alice });
  }
  ready(): boolean {
    return true;
  }
}

/** SpiceDB as the attack needs it: alice may create namespaces in cl0 and nowhere else. */
class Checker implements PermissionChecker {
  readonly queries: PermissionQuery[] = [];
  check(query: PermissionQuery): Promise<PermissionAnswer> {
    this.queries.push(query);
    const allowed = query.resource.type === 'cloud' && query.resource.id === 'cl0' && query.subject.id === 'alice';
    return Promise.resolve({ ok: true, value: { permissionship: allowed ? 'allowed' : 'denied', cached: false } });
  }
  ready(): boolean {
    return true;
  }
}

const tokens: TokenSource = {
  name: 'fake',
  issue: () => Promise.resolve({ ok: true, value: { token: 'minted', issuedAt: 1, expiresAt: 2e9 } }),
};

function grpcBody(fields: Record<string, string>): RequestBody {
  return { bytes: frameMessage(CreateNamespaceRequest.encode(CreateNamespaceRequest.fromObject(fields)).finish()), truncated: false, contentLength: undefined, grpcEncoding: undefined, contentType: 'application/grpc' };
}

function call(options: { body: RequestBody | undefined; headers?: Record<string, string>; direction?: 'inbound' | 'outbound'; method?: string }): RequestContext {
  const method = options.method ?? 'CreateNamespace';
  return {
    direction: options.direction ?? 'inbound',
    requestId: 'r1',
    authority: 'vmcontroller',
    method: 'POST',
    path: `/${SERVICE}/${method}`,
    query: '',
    grpc: { service: SERVICE, method },
    headers: new Map(Object.entries({ authorization: 'Bearer a.b.c', 'content-type': 'application/grpc', ...options.headers })),
    duplicateHeaders: new Set(),
    peerPrincipal: undefined,
    contextExtensions: options.direction === 'outbound' ? { direction: 'outbound', audience: 'vmcontroller' } : { direction: 'inbound' },
    body: options.body,
  };
}

const createNamespaceRule = {
  name: 'create-namespace',
  match: { grpc: { service: SERVICE, method: 'CreateNamespace' } },
  checks: [{ resource: 'cloud:{body.cloud_id}', permission: 'create_namespace' }],
};

function pipeline(overrides: Record<string, unknown> = {}) {
  const raw = {
    service: { name: 'gwadmin' },
    issuers: [{ name: 'auth', issuer: 'https://auth.example', audience: 'vmcontroller', kind: 'internal', jwks: { file: 'unused.json' } }],
    body: { protoFiles: ['vmcontroller.proto'] },
    inbound: { rules: [createNamespaceRule] },
    ...overrides,
  };
  const loaded = validateConfig(raw, 'test', DEMO);
  const checker = new Checker();
  return { checker, pipeline: buildPipeline(loaded, { verifier: new Verifier(), checker, tokens }) };
}

describe('inbound rules that read the request message', () => {
  it('checks the cloud the message names, whatever a header claims (the header/body confusion attack)', async () => {
    const { pipeline: p, checker } = pipeline();
    const forged = await p.authorizer.decide(call({ body: grpcBody({ cloud_id: 'cl1', namespace_id: 'ns' }), headers: { 'x-cloud-id': 'cl0' } }));
    expect(forged).toMatchObject({ kind: 'deny', reason: 'permission_denied', facts: { body: { cloud_id: 'cl1' } } });
    expect(checker.queries.map((q) => q.resource.id)).toEqual(['cl1']);

    const honest = await p.authorizer.decide(call({ body: grpcBody({ cloud_id: 'cl0', namespace_id: 'ns' }) }));
    expect(honest).toMatchObject({ kind: 'allow', reason: 'allowed', facts: { body: { cloud_id: 'cl0' }, checks: [{ resource: 'cloud:cl0', result: 'allowed' }] } });
  });

  it('denies without asking SpiceDB when the field is absent, the body is missing or cannot be read', async () => {
    const { pipeline: p, checker } = pipeline();
    expect(await p.authorizer.decide(call({ body: grpcBody({ namespace_id: 'ns' }) }))).toMatchObject({ kind: 'deny', reason: 'body_field_missing', status: 400 });
    expect(await p.authorizer.decide(call({ body: undefined }))).toMatchObject({ kind: 'deny', reason: 'body_missing' });
    const truncated = { ...grpcBody({ cloud_id: 'cl0' }), truncated: true };
    expect(await p.authorizer.decide(call({ body: truncated }))).toMatchObject({ kind: 'deny', reason: 'body_truncated', status: 413 });
    const snappy = { ...grpcBody({ cloud_id: 'cl0' }), grpcEncoding: 'snappy' };
    snappy.bytes = Uint8Array.from(snappy.bytes);
    snappy.bytes[0] = 1;
    expect(await p.authorizer.decide(call({ body: snappy }))).toMatchObject({ kind: 'deny', reason: 'body_unsupported_encoding' });
    const twice = grpcBody({ cloud_id: 'cl0' });
    expect(await p.authorizer.decide(call({ body: { ...twice, bytes: Buffer.concat([twice.bytes, twice.bytes]) } }))).toMatchObject({ reason: 'body_multiple_messages' });
    expect(checker.queries).toEqual([]);
  });

  it('reads JSON bodies on HTTP routes with the same syntax', async () => {
    const rule = {
      name: 'create-namespace-http',
      match: { http: { methods: ['POST'], path: '/v1/namespaces' } },
      checks: [{ resource: 'cloud:{body.spec.cloud}', permission: 'create_namespace' }],
    };
    const { pipeline: p, checker } = pipeline({ inbound: { rules: [rule] } });
    const json = (text: string): RequestContext => ({
      ...call({ body: { bytes: Buffer.from(text), truncated: false, contentLength: undefined, grpcEncoding: undefined, contentType: 'application/json' } }),
      grpc: undefined,
      path: '/v1/namespaces',
      headers: new Map([['authorization', 'Bearer a.b.c'], ['content-type', 'application/json']]),
    });
    expect(await p.authorizer.decide(json('{"spec":{"cloud":"cl0"}}'))).toMatchObject({ kind: 'allow' });
    expect(await p.authorizer.decide(json('{"spec":{"cloud":"cl1"}}'))).toMatchObject({ kind: 'deny', reason: 'permission_denied' });
    expect(await p.authorizer.decide(json('{"spec":{"cloud":'))).toMatchObject({ kind: 'deny', reason: 'body_malformed' });
    expect(await p.authorizer.decide(json('{"spec":{}}'))).toMatchObject({ kind: 'deny', reason: 'body_field_missing' });
    expect(checker.queries.map((q) => q.resource.id)).toEqual(['cl0', 'cl1']);
  });

  it('refuses at load a path the message does not have, naming the rule and the field', () => {
    const typo = { ...createNamespaceRule, checks: [{ resource: 'cloud:{body.cloud}', permission: 'create_namespace' }] };
    expect(() => pipeline({ inbound: { rules: [typo] } })).toThrow(/create-namespace.*cloud/);
  });

  it('refuses at load a body rule on a whole gRPC service, or on gRPC without descriptors', () => {
    const wholeService = { ...createNamespaceRule, match: { grpc: { service: SERVICE } } };
    expect(() => pipeline({ inbound: { rules: [wholeService] } })).toThrow(/must name its gRPC method/);
    expect(() => pipeline({ body: {} })).toThrow(/no body.protoFiles or body.descriptorSet/);
  });
});

describe('on-behalf-of checks that read the request message', () => {
  const outbound = {
    tokens: { source: { kind: 'mint' } },
    outbound: {
      upstreams: [{ audience: 'vmcontroller' }],
      onBehalfOf: { allowedCallers: ['gwadmin'], checks: [{ resource: 'cloud:{body.cloud_id}', permission: 'create_saga', subject: 'user:{subject}' }] },
    },
  };

  it('acts for the user only on the cloud the message names', async () => {
    const { pipeline: p, checker } = pipeline(outbound);
    const saga = (cloud: string) =>
      call({ direction: 'outbound', body: grpcBody({ cloud_id: cloud }), headers: { authorization: '', 'x-jwtauth-on-behalf-of': 'alice', 'x-cloud-id': 'cl0' } });
    const strip = (request: RequestContext): RequestContext => {
      const headers = new Map(request.headers);
      headers.delete('authorization');
      return { ...request, headers };
    };
    expect(await p.authorizer.decide(strip(saga('cl0')))).toMatchObject({ kind: 'allow', reason: 'on_behalf_of_token_attached', facts: { body: { cloud_id: 'cl0' } } });
    expect(await p.authorizer.decide(strip(saga('cl1')))).toMatchObject({ kind: 'deny', reason: 'on_behalf_of_not_permitted' });
    expect(checker.queries.map((q) => q.resource.id)).toEqual(['cl0', 'cl1']);
  });
});
