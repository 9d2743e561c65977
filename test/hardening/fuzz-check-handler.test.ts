/**
 * Property fuzzer over the ext_authz Check handler with the real pipeline (hardening config, real
 * verifier, real mint source, oracle checker): random and mutated CheckRequests — huge and
 * duplicated headers, invalid UTF-8 in raw_value, missing attributes, absurd paths, mutated tokens.
 * For every input: the handler answers exactly once with a well-formed CheckResponse (no throw, no
 * gRPC error, no unhandled rejection, no internal_error), and an allow is only ever one the rules
 * grant.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CheckRequest__Output } from '../../src/generated/envoy/service/auth/v3/CheckRequest.js';
import type { CheckResponse__Output } from '../../src/generated/envoy/service/auth/v3/CheckResponse.js';
import { serviceToken, userToken } from '../../dev/hardening/fixtures.js';
import { malformation, openInProcessPipeline, reasonOf } from '../support/hardening/pipeline.js';
import type { InProcessPipeline } from '../support/hardening/pipeline.js';
import { hs256WithPublicKey, nowSeconds, unsignedToken } from '../../dev/jwt-fixtures.js';

export const HANDLER_RUNS = 30_000;

interface Known {
  readonly token: string;
  readonly kind: 'external' | 'internal';
  readonly sub: string;
  /** The audience it is valid for; undefined when it is not valid at all (expired). */
  readonly aud: string | undefined;
}

let p: InProcessPipeline;
let known: Known[];
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown): void => {
  unhandled.push(reason);
};

beforeAll(async () => {
  process.on('unhandledRejection', onUnhandled);
  p = await openInProcessPipeline();
  const ext = p.externalKey;
  const mesh = p.internalKey;
  known = [
    { token: await userToken(ext, 'alice'), kind: 'external', sub: 'alice', aud: 'gwadmin' },
    { token: await userToken(ext, 'bob'), kind: 'external', sub: 'bob', aud: 'gwadmin' },
    { token: await userToken(ext, 'alice', { aud: 'other' }), kind: 'external', sub: 'alice', aud: 'other' },
    { token: await userToken(ext, 'alice', { expiresIn: -3600 }), kind: 'external', sub: 'alice', aud: undefined },
    { token: await serviceToken(mesh, 'vmcontroller'), kind: 'internal', sub: 'vmcontroller', aud: 'gwadmin' },
    { token: await serviceToken(mesh, 'gwadmin', { aud: 'vmcontroller' }), kind: 'internal', sub: 'gwadmin', aud: 'vmcontroller' },
  ];
});
afterAll(async () => {
  process.off('unhandledRejection', onUnhandled);
  await p?.close();
});

/** Bytes of a compact JWS's three segments: two tokens that decode alike are the same token. */
function canonical(token: string): string | undefined {
  const parts = token.split('.');
  if (parts.length !== 3 || !parts.every((s) => /^[A-Za-z0-9_-]*$/.test(s))) return undefined;
  return parts.map((s) => Buffer.from(s, 'base64url').toString('hex')).join('.');
}

const mutatedToken = (base: fc.Arbitrary<string>): fc.Arbitrary<string> =>
  fc.tuple(base, fc.nat(), fc.nat({ max: 5 }), fc.string({ minLength: 1, maxLength: 3 })).map(([t, at, op, s]) => {
    const i = at % (t.length + 1);
    switch (op) {
      case 0:
        return t.slice(0, i) + s + t.slice(i + 1); // replace
      case 1:
        return t.slice(0, i) + t.slice(i + s.length); // delete
      case 2:
        return t.slice(0, i) + s + t.slice(i); // insert
      case 3: {
        const [h, b, sig] = t.split('.');
        return `${b}.${h}.${sig}`; // swap header and payload
      }
      case 4:
        return t.slice(0, i); // truncate
      default:
        return `${t}.${t.split('.')[1]}`; // extra segment
    }
  });

function tokenArb(): fc.Arbitrary<string> {
  const valid = fc.constantFrom(...known.map((k) => k.token));
  const now = nowSeconds();
  return fc.oneof(
    { weight: 4, arbitrary: valid },
    { weight: 4, arbitrary: mutatedToken(valid) },
    { weight: 1, arbitrary: fc.constant(unsignedToken({}, { iss: 'https://idp.example.test', sub: 'alice', aud: 'gwadmin', exp: now + 600 })) },
    { weight: 1, arbitrary: fc.constant(hs256WithPublicKey(p.externalKey, { iss: 'https://idp.example.test', sub: 'alice', aud: 'gwadmin', exp: now + 600 })) },
    { weight: 1, arbitrary: fc.string({ maxLength: 40 }) },
    { weight: 1, arbitrary: fc.nat({ max: 20_000 }).map((n) => 'A'.repeat(n)) },
  );
}

const authorizationArb = (): fc.Arbitrary<string> =>
  fc.oneof(
    { weight: 6, arbitrary: tokenArb().map((t) => `Bearer ${t}`) },
    { weight: 1, arbitrary: tokenArb().map((t) => `bearer   ${t}  `) },
    { weight: 1, arbitrary: fc.tuple(tokenArb(), tokenArb()).map(([a, b]) => `Bearer ${a}, Bearer ${b}`) },
    { weight: 1, arbitrary: fc.string({ maxLength: 30 }) },
  );

const headerNameArb = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom('authorization', 'x-jwtauth-subject', 'x-jwtauth-issuer', 'x-jwtauth-on-behalf-of', 'x-cloud-id', 'content-type', 'host', ':path', ':method', ':authority', 'x-request-id') },
  { weight: 1, arbitrary: fc.string({ maxLength: 20 }) },
  { weight: 1, arbitrary: fc.constantFrom('Authorization', 'AUTHORIZATION', 'x-JWTAUTH-subject') },
);
const headerValueArb = fc.oneof(
  { weight: 4, arbitrary: fc.string({ maxLength: 40 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 20 }) },
  { weight: 1, arbitrary: fc.constantFrom('application/grpc', 'cl0', 'cl1', 'alice', 'a\r\nx-evil: 1', 'a\u0000b', '*') },
  { weight: 1, arbitrary: fc.nat({ max: 70_000 }).map((n) => 'v'.repeat(n)) },
);

type Entry = { key: string; value: string; raw: Uint8Array | undefined };
const entryArb = (): fc.Arbitrary<Entry> => fc.oneof(
  { weight: 3, arbitrary: authorizationArb().map((value) => ({ key: 'authorization', value, raw: undefined })) },
  { weight: 5, arbitrary: fc.record({ key: headerNameArb, value: headerValueArb, raw: fc.constant(undefined) }) },
  // invalid UTF-8 and arbitrary bytes, the way encode_raw_headers sends them
  { weight: 1, arbitrary: fc.record({ key: headerNameArb, value: fc.constant(''), raw: fc.uint8Array({ maxLength: 64 }) }) },
);

const pathArb = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom('/v1/clouds/cl0/vms', '/v1/clouds/cl1/vms', '/v1/clouds/cl%30/x?y=1', '/v1/clouds/cl0', '/public', '/public?x', '/internal/a', '/external/b', '/authzed.api.v1.PermissionsService/WriteRelationships') },
  { weight: 2, arbitrary: fc.webPath() },
  { weight: 2, arbitrary: fc.string({ maxLength: 60 }) },
  { weight: 1, arbitrary: fc.constantFrom('', '/', '//', '/v1/clouds//vms', '/v1/clouds/*/vms', '/v1/clouds/..%2F..%2Fetc/x', '/v1/clouds/%/x', '/v1/clouds/%ZZ/x', '/v1/clouds/cl0%00/x') },
  { weight: 1, arbitrary: fc.nat({ max: 100_000 }).map((n) => `/v1/clouds/${'a'.repeat(n)}`) },
);

const extensionsArb = fc.oneof(
  { weight: 6, arbitrary: fc.constant({ direction: 'inbound' }) },
  { weight: 3, arbitrary: fc.constant({ direction: 'outbound', audience: 'vmcontroller' }) },
  fc.constantFrom({ direction: 'outbound' }, { direction: 'outbound', audience: 'evil' }, { direction: 'outbound', audience: '' }, { direction: 'outbound', audience: 'vmcontroller', caller: 'saga-executor' }, {}, { direction: 'sideways' }),
  fc.dictionary(fc.string({ maxLength: 10 }), fc.string({ maxLength: 10 }), { maxKeys: 3 }),
);

const requestArb = () => fc
  .record({
    ext: extensionsArb,
    method: fc.oneof({ weight: 6, arbitrary: fc.constantFrom('GET', 'POST', 'get') }, fc.constantFrom('', 'CONNECT'), fc.string({ maxLength: 8 })),
    path: pathArb,
    host: fc.oneof(fc.constantFrom('vmcontroller', 'VMCONTROLLER', 'evil', ''), fc.string({ maxLength: 20 })),
    entries: fc.array(entryArb(), { maxLength: 8 }),
    asMap: fc.boolean(),
    drop: fc.oneof({ weight: 12, arbitrary: fc.constant('none') }, fc.constantFrom('attributes', 'request', 'http', 'headers')),
    principal: fc.option(fc.string({ maxLength: 20 }), { nil: undefined }),
  })
  .map((r): { check: CheckRequest__Output; r: typeof r } => {
    const headers: Record<string, string> = {};
    if (r.asMap) for (const e of r.entries) headers[e.key] = headers[e.key] === undefined ? e.value : `${headers[e.key]},${e.value}`;
    const http = {
      id: 'fuzz',
      method: r.method,
      path: r.path,
      host: r.host,
      ...(r.drop === 'headers' ? {} : r.asMap ? { headers } : { header_map: { headers: r.entries.map((e) => ({ key: e.key, value: e.value, ...(e.raw ? { raw_value: Buffer.from(e.raw) } : {}) })) } }),
    };
    const check = {
      attributes:
        r.drop === 'attributes'
          ? undefined
          : {
              context_extensions: r.ext,
              source: { principal: r.principal },
              request: r.drop === 'request' ? undefined : { http: r.drop === 'http' ? undefined : http },
            },
    } as unknown as CheckRequest__Output;
    return { check, r };
  });

/** What the rules grant; returns a complaint when an allow is not one of them. */
function unjustifiedAllow(input: { check: CheckRequest__Output; r: { ext: Record<string, string>; entries: Entry[]; method: string; path: string; host: string; drop: string } }, response: CheckResponse__Output): string | undefined {
  const { r } = input;
  if (r.drop !== 'none' && r.drop !== 'headers') return `allowed a request without ${r.drop}`;
  const entries = r.drop === 'headers' ? [] : r.entries;
  // Every answer carries its decision id; the rules below are about what else an allow sets.
  const set = new Map(
    (response.ok_response?.headers ?? []).filter((h) => h.header?.key !== 'x-jwtauth-decision-id').map((h) => [h.header?.key ?? '', h.header?.value ?? '']),
  );
  const removed = new Set(response.ok_response?.headers_to_remove ?? []);
  const auths = entries.filter((e) => e.key.toLowerCase() === 'authorization');
  const presented = auths.length === 1 && auths[0]!.raw === undefined ? /^bearer +(\S+) *$/i.exec(auths[0]!.value)?.[1] : undefined;
  const token = presented === undefined ? undefined : known.find((k) => k.aud !== undefined && canonical(k.token) === canonical(presented));
  const path = r.path.split('?')[0] ?? '';
  if (r.ext.direction === 'inbound') {
    // Each identity header is removed, or set with append: false (Envoy applies removals after
    // sets, so a set header is deliberately not in the removal list): a forged value never survives.
    for (const name of ['x-jwtauth-subject', 'x-jwtauth-subject-type', 'x-jwtauth-issuer', 'x-jwtauth-actor']) {
      if (!removed.has(name) && !set.has(name)) return `inbound allow keeps the caller's ${name}`;
    }
    if (path === '/public' && r.method.toUpperCase() === 'GET') return undefined;
    if (auths.length !== 1) return 'inbound allow without exactly one Authorization header';
    if (!token || token.aud !== 'gwadmin') return 'inbound allow without a valid token for gwadmin';
    if (set.get('x-jwtauth-subject') !== token.sub) return 'x-jwtauth-subject is not the token subject';
    const seg = path.split('/');
    if (seg[1] === 'v1' && seg[2] === 'clouds') {
      if (r.method.toUpperCase() !== 'GET' || token.sub !== 'alice' || token.kind !== 'external') return 'cloud route allowed for someone SpiceDB did not allow';
      let cloud: string;
      try {
        cloud = decodeURIComponent(seg[3] ?? '');
      } catch {
        return 'cloud route allowed with an undecodable cloud';
      }
      return cloud === 'cl0' ? undefined : `cloud route allowed on ${cloud}`;
    }
    if (path.startsWith('/internal/')) return token.kind === 'internal' ? undefined : 'internal route took an external token';
    if (path.startsWith('/external/')) return token.kind === 'external' ? undefined : 'external route took an internal token';
    return `inbound allow on ${path}, which no rule grants`;
  }
  if (r.ext.direction === 'outbound') {
    if (!removed.has('x-jwtauth-on-behalf-of')) return 'outbound allow keeps the on-behalf-of header';
    const audience = r.ext.audience ?? '';
    if (audience !== 'vmcontroller' && !(audience === '' && r.host.toLowerCase() === 'vmcontroller')) return `outbound allow for audience ${audience} / host ${r.host}`;
    if (entries.some((e) => e.key.toLowerCase() === 'x-jwtauth-on-behalf-of')) return 'on-behalf-of allowed for a caller that may not use it';
    if (auths.length === 0) return set.get('authorization')?.startsWith('Bearer ') ? undefined : 'service token allow without a token set';
    if (!token) return 'outbound allow with an invalid token';
    if (token.kind === 'internal') return token.aud === 'vmcontroller' && set.size === 0 ? undefined : 'internal token passed to the wrong audience';
    return token.aud === 'gwadmin' && set.get('authorization')?.startsWith('Bearer ') ? undefined : 'external token not exchanged';
  }
  return `allow with direction ${r.ext.direction}`;
}

describe('Check handler under hostile input', () => {
  it(`answers ${HANDLER_RUNS} random and mutated CheckRequests well-formed, never allowing what the rules deny`, async () => {
    const reasons = new Map<string, number>();
    await fc.assert(
      fc.asyncProperty(requestArb(), async (input) => {
        const response = await p.check(input.check);
        const bad = malformation(response);
        if (bad) throw new Error(`malformed response: ${bad}`);
        const reason = reasonOf(response);
        reasons.set(reason, (reasons.get(reason) ?? 0) + 1);
        if (reason === 'internal_error') throw new Error(`internal_error: ${String(p.unexpectedErrors.at(-1))}`);
        if (response.status?.code === 0) {
          const complaint = unjustifiedAllow(input as Parameters<typeof unjustifiedAllow>[0], response);
          if (complaint) throw new Error(complaint);
        }
      }),
      { numRuns: HANDLER_RUNS, seed: Number(process.env.FUZZ_SEED ?? 20261123) },
    );
    expect(unhandled).toEqual([]);
    expect(p.unexpectedErrors).toEqual([]);
    // The generators reach the interesting outcomes, not just one deny.
    for (const reason of ['allowed', 'headers_too_large', 'invalid_header_value', 'duplicate_authorization', 'token_too_large', 'missing_direction', 'malformed_request', 'bad_signature', 'permission_denied', 'permission_backend_unavailable', 'unknown_upstream']) {
      expect(reasons.get(reason) ?? 0, `${reason} never produced: ${JSON.stringify(Object.fromEntries(reasons))}`).toBeGreaterThan(0);
    }
  }, 120_000);
});
