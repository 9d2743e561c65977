/**
 * Properties of the body readers over generated inputs. Messages are built by protobufjs's real
 * encoder (Type.encode) from a generated model, and the expected values are computed from that
 * model by the rules the readers document, never by calling the readers' own code.
 */
import fc from 'fast-check';
import protobuf from 'protobufjs';
import { deflateSync, gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { compileGrpcBodyReader, compileJsonBodyReader } from '../../src/body/body-reader.js';
import type { BodyRead, BodyReader } from '../../src/body/body-reader.js';
import { body, frame, loadFixtureRoot, REQUEST_TYPE, SERVICE } from '../fixtures/body/fixture.js';

const root = loadFixtureRoot();
const Request = root.lookupType(REQUEST_TYPE);

const PHASES = ['PHASE_UNSPECIFIED', 'PHASE_ACTIVE', 'PHASE_DELETING'];
const TIERS = ['TIER_UNSPECIFIED', 'TIER_FREE', 'TIER_PRO'];

// Any code point but lone surrogates: protobuf strings are UTF-8.
const text = fc.string({ unit: 'binary', maxLength: 24 });
const int64 = fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n });
const uint64 = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
const int32 = fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 });
// Known enum numbers plus a few the descriptors do not name.
const phase = fc.integer({ min: 0, max: 4 });
const tier = fc.integer({ min: 0, max: 4 });

const model = fc.record(
  {
    cloud_id: text,
    namespace_id: text,
    spec: fc.record(
      {
        cloud: fc.record({ id: text, region: text }, { requiredKeys: [] }),
        display_name: text,
        phase,
        protected: fc.boolean(),
      },
      { requiredKeys: [] },
    ),
    tier,
    quota_bytes: int64,
    request_seq: uint64,
    offset: int64,
    fingerprint: uint64,
    delta: int64,
    dry_run: fc.boolean(),
    priority: int32,
    replicas: int32,
    owner: fc.constantFrom('user', 'team', 'both'),
    user: text,
    team: text,
    labels: fc.array(text, { maxLength: 3 }),
    annotations: fc.dictionary(text, text, { maxKeys: 3 }),
  },
  { requiredKeys: [] },
);
type Model = typeof model extends fc.Arbitrary<infer T> ? T : never;

function long(value: bigint, unsigned: boolean): protobuf.Long {
  const bits = BigInt.asUintN(64, value);
  return new protobuf.util.Long(Number(bits & 0xffffffffn) | 0, Number(bits >> 32n) | 0, unsigned);
}

/** The model as the plain object protobufjs's encoder takes: only the fields the model sets. */
function toMessage(m: Model): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of ['cloud_id', 'namespace_id', 'spec', 'tier', 'dry_run', 'priority', 'replicas', 'labels', 'annotations'] as const) {
    if (m[key] !== undefined) out[key] = m[key];
  }
  for (const [key, unsigned] of [['quota_bytes', false], ['request_seq', true], ['offset', false], ['fingerprint', true], ['delta', false]] as const) {
    const value = m[key];
    if (value !== undefined) out[key] = long(value, unsigned);
  }
  if ((m.owner === 'user' || m.owner === 'both') && m.user !== undefined) out['user_id'] = m.user;
  if ((m.owner === 'team' || m.owner === 'both') && m.team !== undefined) out['team_id'] = m.team;
  return out;
}

type Expected = { readonly value: string } | { readonly refusal: 'body_field_missing' | 'body_malformed' };
const MISSING: Expected = { refusal: 'body_field_missing' };

const nonEmpty = (value: string | undefined): Expected => (value === undefined || value === '' ? MISSING : { value });
const nonZero64 = (value: bigint | undefined): Expected => (value === undefined || value === 0n ? MISSING : { value: value.toString() });
const named = (names: readonly string[], value: number | undefined): Expected =>
  value === undefined || value === 0 || names[value] === undefined ? MISSING : { value: names[value] ?? '' };

/** What each path must read, by the documented presence rules, from the model alone. */
const EXPECTATIONS: Readonly<Record<string, (m: Model) => Expected>> = {
  cloud_id: (m) => nonEmpty(m.cloud_id),
  'spec.cloud.id': (m) => nonEmpty(m.spec?.cloud?.id),
  'spec.cloud.region': (m) => nonEmpty(m.spec?.cloud?.region),
  'spec.phase': (m) => named(PHASES, m.spec?.phase),
  'spec.protected': (m) => (m.spec?.protected === undefined ? MISSING : { value: String(m.spec.protected) }),
  tier: (m) => named(TIERS, m.tier),
  quota_bytes: (m) => nonZero64(m.quota_bytes),
  request_seq: (m) => nonZero64(m.request_seq),
  offset: (m) => nonZero64(m.offset),
  fingerprint: (m) => nonZero64(m.fingerprint),
  delta: (m) => nonZero64(m.delta),
  dry_run: (m) => (m.dry_run === true ? { value: 'true' } : MISSING),
  priority: (m) => (m.priority === undefined ? MISSING : { value: String(m.priority) }),
  replicas: (m) => (m.replicas === undefined || m.replicas === 0 ? MISSING : { value: String(m.replicas) }),
  user_id: (m) => {
    const sent = toMessage(m);
    if ('user_id' in sent && 'team_id' in sent) return { refusal: 'body_malformed' };
    return nonEmpty(typeof sent['user_id'] === 'string' ? sent['user_id'] : undefined);
  },
};
const PATHS = Object.keys(EXPECTATIONS);
const single = new Map(PATHS.map((path) => [path, compileGrpcBodyReader(root, SERVICE, 'CreateNamespace', [path], 'p', 1 << 20)]));
const all = compileGrpcBodyReader(root, SERVICE, 'CreateNamespace', PATHS, 'p', 1 << 20);

const encoding = fc.constantFrom('plain', 'gzip', 'deflate');

function framed(message: Uint8Array, how: string): ReturnType<typeof body> {
  if (how === 'gzip') return body(frame(gzipSync(message), 1), { grpcEncoding: 'gzip' });
  if (how === 'deflate') return body(frame(deflateSync(message), 1), { grpcEncoding: 'deflate' });
  return body(frame(message));
}

function matches(read: BodyRead, path: string, expected: Expected): boolean {
  if ('value' in expected) return read.ok && read.value.size === 1 && read.value.get(path) === expected.value;
  return !read.ok && read.reason === expected.refusal;
}

describe('gRPC body properties', () => {
  it('reads a message whose spec arrives split across occurrences as the whole message (protobuf merges them)', () => {
    const specPaths = PATHS.filter((path) => path.startsWith('spec.'));
    fc.assert(
      fc.property(model, (m) => {
        const whole = toMessage(m);
        const spec = whole['spec'] as (Record<string, unknown> & { cloud?: { id?: string; region?: string } }) | undefined;
        if (spec === undefined) return;
        const { cloud, ...rest } = spec;
        // spec.cloud.id first, then everything else, then spec.cloud.region: three occurrences of spec.
        const split = Buffer.concat([
          Request.encode({ spec: cloud?.id === undefined ? {} : { cloud: { id: cloud.id } } }).finish(),
          Request.encode({ ...whole, spec: rest }).finish(),
          Request.encode({ spec: cloud?.region === undefined ? {} : { cloud: { region: cloud.region } } }).finish(),
        ]);
        for (const path of specPaths) {
          const expected = EXPECTATIONS[path]?.(m) ?? MISSING;
          const read = single.get(path)?.read(body(frame(split)));
          if (read === undefined || !matches(read, path, expected)) throw new Error(`${path}: expected ${JSON.stringify(expected)}, read ${JSON.stringify(read, (_, v: unknown) => (v instanceof Map ? [...v] : v))}`);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('reads exactly the values the encoded model holds, for every path and framing', () => {
    fc.assert(
      fc.property(model, encoding, (m, how) => {
        const bytes = Request.encode(toMessage(m)).finish();
        const request = framed(bytes, how);
        for (const path of PATHS) {
          const expected = EXPECTATIONS[path]?.(m) ?? MISSING;
          const read = single.get(path)?.read(request);
          if (read === undefined || !matches(read, path, expected)) {
            throw new Error(`${path}: expected ${JSON.stringify(expected)}, read ${JSON.stringify(read, (_, v: unknown) => (v instanceof Map ? [...v] : v))}`);
          }
        }
        // All paths at once: every value, or the first path's refusal.
        const firstRefused = PATHS.map((path) => EXPECTATIONS[path]?.(m) ?? MISSING).find((e) => !('value' in e));
        const read = all.read(request);
        if (firstRefused === undefined) {
          expect(read.ok).toBe(true);
          if (read.ok) expect([...read.value.keys()]).toEqual(PATHS);
        } else {
          expect(read.ok ? 'ok' : read.reason).toBe('refusal' in firstRefused ? firstRefused.refusal : 'ok');
        }
      }),
      { numRuns: 300 },
    );
  });

  it('never throws on arbitrary bytes, and an ok read holds only configured paths, each present in the message', () => {
    const mutated = fc
      .tuple(model, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }))
      .map(([m, edits]) => {
        const bytes = Buffer.from(Request.encode(toMessage(m)).finish());
        for (const [at, value] of edits) if (bytes.length > 0) bytes[at % bytes.length] = value;
        return frame(bytes);
      });
    const raw = fc.uint8Array({ maxLength: 200 });
    const rawFramed = raw.map((payload) => frame(payload));
    fc.assert(
      fc.property(fc.oneof(mutated, raw, rawFramed), fc.boolean(), (bytes, truncated) => {
        for (const reader of [all, ...single.values()]) {
          let read: BodyRead | undefined;
          expect(() => {
            read = reader.read(body(bytes, { truncated }));
          }).not.toThrow();
          if (read?.ok !== true) continue;
          expect(truncated).toBe(false);
          expect([...read.value.keys()]).toEqual(reader.paths);
          // The value must come from the message: every step of its path is an own property there.
          const decoded = Request.decode(bytes.subarray(5)) as unknown as Record<string, unknown>;
          for (const path of reader.paths) {
            expect(read.value.get(path)).not.toBe('');
            let current: unknown = decoded;
            for (const step of path.split('.')) {
              expect(Object.hasOwn(current as object, step)).toBe(true);
              current = (current as Record<string, unknown>)[step];
            }
          }
        }
      }),
      { numRuns: 500 },
    );
  });
});

describe('JSON body properties', () => {
  const key = fc.constantFrom('a', 'b', 'c');
  const leaf = fc.oneof(text, fc.double(), fc.boolean(), fc.constant(null), fc.array(text, { maxLength: 2 }));
  const { node } = fc.letrec<{ node: unknown }>((tie) => ({
    node: fc.oneof({ depthSize: 'small', withCrossShrink: true }, leaf, fc.dictionary(key, tie('node'), { maxKeys: 3 })),
  }));
  const document = fc.dictionary(key, node, { maxKeys: 3 });
  const jsonPaths = ['a', 'a.b', 'b.c.a', 'c.c'];
  const readers = new Map(jsonPaths.map((path) => [path, compileJsonBodyReader([path], 'p', 1 << 20)]));

  function expected(doc: unknown, path: string): string | undefined {
    let current = doc;
    for (const step of path.split('.')) {
      if (typeof current !== 'object' || current === null || Array.isArray(current) || !Object.hasOwn(current, step)) return undefined;
      current = (current as Record<string, unknown>)[step];
    }
    if (typeof current === 'string') return current === '' ? undefined : current;
    if (typeof current === 'number') return Number.isFinite(current) ? String(current) : undefined;
    if (typeof current === 'boolean') return String(current);
    return undefined;
  }

  it('reads exactly what the generated document holds at each path', () => {
    fc.assert(
      fc.property(document, (doc) => {
        const request = body(Buffer.from(JSON.stringify(doc), 'utf8'));
        for (const [path, reader] of readers as Map<string, BodyReader>) {
          const want = expected(doc, path);
          const read = reader.read(request);
          if (want === undefined) expect(read.ok ? 'ok' : read.reason).toBe('body_field_missing');
          else expect(read).toEqual({ ok: true, value: new Map([[path, want]]) });
        }
      }),
      { numRuns: 300 },
    );
  });

  it('never throws on arbitrary bytes', () => {
    const reader = compileJsonBodyReader(jsonPaths, 'p', 1 << 20);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        const read = reader.read(body(bytes));
        if (read.ok) expect([...read.value.keys()]).toEqual(jsonPaths);
      }),
      { numRuns: 300 },
    );
  });
});
