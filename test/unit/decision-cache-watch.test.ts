/**
 * The decision cache in watch mode, driven by a change feed the test publishes to by hand, and the
 * Watch feed against a scripted WatchService: when it publishes changes, and at which revision
 * (the real Watch is tested against a real SpiceDB in test/integration/decision-cache-watch.test.ts).
 */
import { Server, ServerCredentials } from '@grpc/grpc-js';
import type { ServerUnaryCall, ServerWritableStream, sendUnaryData } from '@grpc/grpc-js';
import { v1 } from '@authzed/authzed-node';
import { afterEach, describe, expect, it } from 'vitest';
import type { Closable, PermissionAnswer, PermissionChecker, PermissionQuery } from '../../src/core/ports.js';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import { FeedReplay } from '../../src/spicedb/change-feed.js';
import type { ChangeFeedEvent, RelationshipChange } from '../../src/spicedb/change-feed.js';
import { SpicedbWatchFeed } from '../../src/spicedb/watch-feed.js';
import { spicedbSchema } from '../../src/spicedb/config.js';
import { affects, cachedDecision } from '../../src/spicedb/invalidation.js';
import { permissionDependencies, SchemaDependencies } from '../../src/spicedb/permission-dependencies.js';
import { parseSchemaModel } from '../../src/spicedb/schema-model.js';
import { decorate } from '../../src/spicedb/permission-checker.js';

const SCHEMA = `
use expiration

definition user {}
definition group {
    relation member: user | group#member
}
definition folder {
    relation parent: folder
    relation viewer: user | group#member
    permission view = viewer + parent->view
}
definition doc {
    relation folder: folder
    relation viewer: user | user:* | group#member
    relation banned: user
    relation temp: user with expiration
    permission view = (viewer - banned) + folder->view
    permission read_once = temp
    permission own = viewer
}
`;

function model() {
  const parsed = parseSchemaModel(SCHEMA, 'test.zed');
  if (!parsed.ok) throw new Error(parsed.problem);
  return parsed.value;
}

const change = (text: string): RelationshipChange => {
  const match = /^(\w+):([\w*]+)#(\w+)@(\w+):([\w*]+)(?:#(\w+))?$/.exec(text);
  if (!match) throw new Error(`bad change ${text}`);
  const [, resourceType, resourceId, relation, subjectType, subjectId, subjectRelation] = match;
  return { resourceType: resourceType!, resourceId: resourceId!, relation: relation!, subjectType: subjectType!, subjectId: subjectId!, subjectRelation: subjectRelation ?? '' };
};

const query = (text: string): PermissionQuery => {
  const match = /^(\w+):(\w+)#(\w+)@(\w+):(\w+)(?:#(\w+))?$/.exec(text);
  if (!match) throw new Error(`bad query ${text}`);
  const [, rt, rid, permission, st, sid, srel] = match;
  return { resource: { type: rt!, id: rid! }, permission: permission!, subject: { type: st!, id: sid!, ...(srel ? { relation: srel } : {}) }, consistency: { kind: 'minimize_latency' } };
};

describe('what a permission depends on', () => {
  it('reads relations locally, through arrows (tuplesets, remote) and through subject sets (remote)', () => {
    const dependencies = permissionDependencies(model(), 'doc', 'view')!;
    expect(dependencies.reads.get('doc#viewer')).toEqual({ memberLocal: true, memberRemote: false, tuplesetLocal: false, tuplesetRemote: false });
    expect(dependencies.reads.get('doc#folder')).toEqual({ memberLocal: false, memberRemote: false, tuplesetLocal: true, tuplesetRemote: false });
    // folder->view reaches folder#parent, itself followed as a tupleset on the folders reached.
    expect(dependencies.reads.get('folder#parent')).toMatchObject({ tuplesetRemote: true });
    expect(dependencies.reads.get('group#member')).toMatchObject({ memberRemote: true });
    expect([...dependencies.types].sort()).toEqual(['doc', 'folder', 'group']);
    expect(dependencies.expiring).toBe(false);
    expect(permissionDependencies(model(), 'doc', 'read_once')!.expiring).toBe(true);
  });

  it('is unknown for what the schema does not define', () => {
    expect(permissionDependencies(model(), 'doc', 'nope')).toBeUndefined();
    expect(permissionDependencies(model(), 'nope', 'view')).toBeUndefined();
    expect(new SchemaDependencies().of('doc#view')).toBeUndefined();
  });
});

describe('which cached answers a change could affect', () => {
  const dependencies = new SchemaDependencies();
  dependencies.load(SCHEMA);
  const lookup = (permission: string) => dependencies.of(permission);
  const affected = (changeText: string, queryText: string) => affects(change(changeText), cachedDecision(queryText, query(queryText)), lookup);

  it('a direct relation with a plain subject: that subject on the changed resource only', () => {
    expect(affected('doc:d1#viewer@user:alice', 'doc:d1#view@user:alice')).toBe(true);
    expect(affected('doc:d1#banned@user:alice', 'doc:d1#view@user:alice')).toBe(true);
    // bob's membership of doc:d1's sets did not change, so a hot resource keeps its other answers.
    expect(affected('doc:d1#viewer@user:alice', 'doc:d1#view@user:bob')).toBe(false);
    expect(affected('doc:d1#viewer@user:alice', 'doc:d2#view@user:alice')).toBe(false);
    // A subject set on the resource brings its members; an answer for a subject set may contain alice.
    expect(affected('doc:d1#viewer@group:eng#member', 'doc:d1#view@user:bob')).toBe(true);
    expect(affected('doc:d1#viewer@group:eng#member', 'doc:d2#view@user:bob')).toBe(false);
    expect(affected('doc:d1#viewer@user:alice', 'doc:d1#view@group:ops#member')).toBe(true);
  });

  it('a relation the permission does not read: nothing', () => {
    expect(affected('doc:d1#banned@user:alice', 'doc:d1#own@user:alice')).toBe(false);
    expect(affected('group:eng#member@user:alice', 'doc:d1#read_once@user:alice')).toBe(false);
  });

  it('a group membership: that subject everywhere, and every subject-set answer', () => {
    expect(affected('group:eng#member@user:alice', 'doc:d7#view@user:alice')).toBe(true);
    expect(affected('group:eng#member@user:alice', 'doc:d7#view@user:bob')).toBe(false);
    expect(affected('group:eng#member@user:alice', 'doc:d7#view@group:ops#member')).toBe(true);
    // A nested group brings all its members: every answer of a dependent permission.
    expect(affected('group:eng#member@group:sub#member', 'doc:d7#view@user:bob')).toBe(true);
  });

  it('an arrow: every answer that may walk through the changed object', () => {
    expect(affected('folder:f1#parent@folder:f0', 'doc:d1#view@user:bob')).toBe(true);
    expect(affected('doc:d1#folder@folder:f1', 'doc:d1#view@user:bob')).toBe(true);
    // doc#folder is read only on the checked doc itself.
    expect(affected('doc:d1#folder@folder:f1', 'doc:d2#view@user:bob')).toBe(false);
    // folder#viewer on a folder reached through doc#folder: that subject's answers.
    expect(affected('folder:f1#viewer@user:alice', 'doc:d2#view@user:alice')).toBe(true);
    expect(affected('folder:f1#viewer@user:alice', 'doc:d2#view@user:bob')).toBe(false);
  });

  it('a wildcard: every subject of its type', () => {
    expect(affected('doc:d1#viewer@user:*', 'doc:d1#view@user:bob')).toBe(true);
    expect(affected('doc:d1#viewer@user:*', 'doc:d1#view@service:bob')).toBe(false);
    expect(affected('doc:d1#viewer@user:*', 'doc:d2#view@user:bob')).toBe(false);
  });

  it('a permission the schema does not know: everything', () => {
    expect(affected('group:eng#member@user:alice', 'doc:d1#unknown@user:bob')).toBe(true);
  });
});

class CountingBackend implements PermissionChecker, Closable {
  readonly calls: PermissionQuery[] = [];
  permissionship: 'allowed' | 'denied' = 'allowed';
  check(query: PermissionQuery): Promise<PermissionAnswer> {
    this.calls.push(query);
    return Promise.resolve({ ok: true, value: { permissionship: this.permissionship, cached: false } });
  }
  ready(): boolean {
    return true;
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

function watchStack(decisionCache: Record<string, unknown> = {}) {
  const backend = new CountingBackend();
  const feed = new FeedReplay();
  const config = spicedbSchema.parse({ decisionCache: { ttlMs: 100, watchTtlMs: 60_000, quantizationWindowMs: 1000, ...decisionCache } });
  const checker = decorate(backend, config, new Metrics({ processMetrics: false }), feed);
  const start = (revision = 'r0') => {
    feed.publish({ kind: 'reset', why: 'start', revision, schemaText: SCHEMA, receivedAt: Date.now() });
    feed.publish({ kind: 'state', state: 'live' });
  };
  const changed = (revision: string, ...changes: string[]) => feed.publish({ kind: 'changes', revision, changes: changes.map(change), receivedAt: Date.now() });
  return { backend, feed, checker, start, changed };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('the decision cache in watch mode', () => {
  it('keeps answers past ttlMs while the Watch is live, and drops what a change affects', async () => {
    const { backend, checker, start, changed } = watchStack({ quantizationWindowMs: 0 });
    start();
    await checker.check(query('doc:d1#view@user:alice'));
    await checker.check(query('doc:d2#view@user:alice'));
    await sleep(150);
    expect(await checker.check(query('doc:d1#view@user:alice'))).toMatchObject({ value: { cached: true } });
    changed('r1', 'doc:d1#banned@user:alice');
    backend.permissionship = 'denied';
    expect(await checker.check(query('doc:d1#view@user:alice'))).toEqual({ ok: true, value: { permissionship: 'denied', cached: false } });
    expect(await checker.check(query('doc:d2#view@user:alice'))).toMatchObject({ value: { permissionship: 'allowed', cached: true } });
    expect(backend.calls).toHaveLength(3);
  });

  it('after a change, misses ask at_least_as_fresh it for the quantization window', async () => {
    const { backend, checker, start, changed } = watchStack({ quantizationWindowMs: 200 });
    start('r0');
    await checker.check(query('doc:d1#view@user:alice'));
    expect(backend.calls.at(-1)!.consistency).toEqual({ kind: 'at_least_as_fresh', zedToken: 'r0' });
    changed('r1', 'doc:d1#viewer@user:alice');
    await checker.check(query('doc:d1#view@user:alice'));
    expect(backend.calls.at(-1)!.consistency).toEqual({ kind: 'at_least_as_fresh', zedToken: 'r1' });
    await sleep(250);
    await checker.check(query('doc:d3#view@user:alice'));
    expect(backend.calls.at(-1)!.consistency).toEqual({ kind: 'minimize_latency' });
  });

  it('falls back to ttlMs while the Watch is down, and a resume keeps the answers', async () => {
    const { backend, checker, feed, start } = watchStack();
    start();
    await checker.check(query('doc:d1#view@user:alice'));
    feed.publish({ kind: 'state', state: 'down' });
    expect(await checker.check(query('doc:d1#view@user:alice'))).toMatchObject({ value: { cached: true } });
    await sleep(150);
    expect(await checker.check(query('doc:d1#view@user:alice'))).toMatchObject({ value: { cached: false } });
    feed.publish({ kind: 'state', state: 'live' });
    await sleep(150);
    expect(await checker.check(query('doc:d1#view@user:alice'))).toMatchObject({ value: { cached: true } });
    expect(backend.calls).toHaveLength(2);
  });

  it('never keeps an answer that may rest on an expiring relationship past ttlMs', async () => {
    const { checker, start } = watchStack();
    start();
    await checker.check(query('doc:d1#read_once@user:alice'));
    expect(await checker.check(query('doc:d1#read_once@user:alice'))).toMatchObject({ value: { cached: true } });
    await sleep(150);
    expect(await checker.check(query('doc:d1#read_once@user:alice'))).toMatchObject({ value: { cached: false } });
  });

  it('drops everything when the Watch starts over after a refused cursor or a schema change', async () => {
    const { backend, checker, feed, start } = watchStack();
    start();
    for (const why of ['cursor_expired', 'schema_changed'] as const) {
      await checker.check(query('doc:d1#view@user:alice'));
      feed.publish({ kind: 'reset', why, revision: 'r9', schemaText: SCHEMA, receivedAt: Date.now() });
      expect(await checker.check(query('doc:d1#view@user:alice'))).toMatchObject({ value: { cached: false } });
    }
    // The first fill, and one after each reset (the answer refilled after the first was cached).
    expect(backend.calls).toHaveLength(3);
  });

  it('keeps answers asked before the Watch started only for ttlMs', async () => {
    const { backend, checker, start } = watchStack();
    await checker.check(query('doc:d1#view@user:alice'));
    start();
    // Kept: it is as good as a ttl-mode answer...
    expect(await checker.check(query('doc:d1#view@user:alice'))).toMatchObject({ value: { cached: true } });
    await sleep(150);
    // ...but no more: its snapshot may predate the revision the Watch started from.
    expect(await checker.check(query('doc:d1#view@user:alice'))).toMatchObject({ value: { cached: false } });
    await sleep(150);
    expect(await checker.check(query('doc:d1#view@user:alice'))).toMatchObject({ value: { cached: true } });
    expect(backend.calls).toHaveLength(2);
  });

  it('a call in flight when a change arrives is not cached, and later checks do not join it', async () => {
    // Each call waits until the test releases it with an answer.
    const releases: Array<(permissionship: 'allowed' | 'denied') => void> = [];
    const slow: PermissionChecker & Closable = {
      check: () => new Promise((resolve) => releases.push((permissionship) => resolve({ ok: true, value: { permissionship, cached: false } }))),
      ready: () => true,
      close: () => Promise.resolve(),
    };
    const feed = new FeedReplay();
    const checker = decorate(slow, spicedbSchema.parse({ decisionCache: { quantizationWindowMs: 0 } }), new Metrics({ processMetrics: false }), feed);
    feed.publish({ kind: 'reset', why: 'start', revision: 'r0', schemaText: SCHEMA, receivedAt: Date.now() });
    feed.publish({ kind: 'state', state: 'live' });
    const before = checker.check(query('doc:d1#view@user:alice'));
    feed.publish({ kind: 'changes', revision: 'r1', changes: [change('doc:d1#banned@user:alice')], receivedAt: Date.now() });
    const after = checker.check(query('doc:d1#view@user:alice'));
    expect(releases).toHaveLength(2);
    // The answer read after the change lands first; the one read before it must not overwrite it.
    releases[1]!('denied');
    expect(await after).toMatchObject({ value: { permissionship: 'denied', cached: false } });
    releases[0]!('allowed');
    expect(await before).toMatchObject({ value: { permissionship: 'allowed' } });
    expect(await checker.check(query('doc:d1#view@user:alice'))).toMatchObject({ value: { permissionship: 'denied', cached: true } });
  });

  it('requireWatch: not ready until the Watch is live', () => {
    const { checker, feed, start } = watchStack({ requireWatch: true });
    expect(checker.ready()).toBe(false);
    start();
    expect(checker.ready()).toBe(true);
    feed.publish({ kind: 'state', state: 'down' });
    expect(checker.ready()).toBe(false);
  });
});

/** One scripted Watch call: what it was asked, and a way to answer on it. */
interface ScriptedWatch {
  readonly request: v1.WatchRequest;
  readonly call: ServerWritableStream<v1.WatchRequest, v1.WatchResponse>;
}

const serialize =
  <T extends object>(type: { toBinary(message: T): Uint8Array }) =>
  (message: T): Buffer =>
    Buffer.from(type.toBinary(message));

/** A SpiceDB that answers ReadSchema at revision `r0` and hands each Watch call to the test. */
async function scriptedSpicedb(): Promise<{ endpoint: string; watches: ScriptedWatch[]; next(): Promise<ScriptedWatch>; close(): void }> {
  const server = new Server();
  const watches: ScriptedWatch[] = [];
  const waiting: Array<() => void> = [];
  server.addService(
    {
      readSchema: {
        path: '/authzed.api.v1.SchemaService/ReadSchema',
        requestStream: false,
        responseStream: false,
        requestSerialize: serialize(v1.ReadSchemaRequest),
        requestDeserialize: (bytes: Buffer) => v1.ReadSchemaRequest.fromBinary(bytes),
        responseSerialize: serialize(v1.ReadSchemaResponse),
        responseDeserialize: (bytes: Buffer) => v1.ReadSchemaResponse.fromBinary(bytes),
      },
      watch: {
        path: '/authzed.api.v1.WatchService/Watch',
        requestStream: false,
        responseStream: true,
        requestSerialize: serialize(v1.WatchRequest),
        requestDeserialize: (bytes: Buffer) => v1.WatchRequest.fromBinary(bytes),
        responseSerialize: serialize(v1.WatchResponse),
        responseDeserialize: (bytes: Buffer) => v1.WatchResponse.fromBinary(bytes),
      },
    },
    {
      readSchema: (_call: ServerUnaryCall<v1.ReadSchemaRequest, v1.ReadSchemaResponse>, callback: sendUnaryData<v1.ReadSchemaResponse>) =>
        callback(null, v1.ReadSchemaResponse.create({ schemaText: SCHEMA, readAt: v1.ZedToken.create({ token: 'r0' }) })),
      watch: (call: ServerWritableStream<v1.WatchRequest, v1.WatchResponse>) => {
        watches.push({ request: call.request, call });
        for (const wake of waiting.splice(0)) wake();
      },
    },
  );
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))));
  return {
    endpoint: `127.0.0.1:${port}`,
    watches,
    async next() {
      const count = watches.length;
      while (watches.length === count) await new Promise<void>((resolve) => waiting.push(resolve));
      return watches.at(-1)!;
    },
    close: () => server.forceShutdown(),
  };
}

const update = (text: string): v1.RelationshipUpdate => {
  const c = change(text);
  return v1.RelationshipUpdate.create({
    operation: v1.RelationshipUpdate_Operation.TOUCH,
    relationship: v1.Relationship.create({
      resource: v1.ObjectReference.create({ objectType: c.resourceType, objectId: c.resourceId }),
      relation: c.relation,
      subject: v1.SubjectReference.create({ object: v1.ObjectReference.create({ objectType: c.subjectType, objectId: c.subjectId }), optionalRelation: c.subjectRelation }),
    }),
  });
};
const changesAt = (token: string, ...texts: string[]): v1.WatchResponse => v1.WatchResponse.create({ updates: texts.map(update), changesThrough: v1.ZedToken.create({ token }) });
const checkpointAt = (token: string): v1.WatchResponse => v1.WatchResponse.create({ isCheckpoint: true, changesThrough: v1.ZedToken.create({ token }) });

describe('the Watch feed publishes changes at a revision that includes every change before them', () => {
  const closers: Array<() => unknown> = [];
  afterEach(async () => {
    for (const close of closers.splice(0).reverse()) await close();
  });

  async function watching() {
    const spicedb = await scriptedSpicedb();
    closers.push(() => spicedb.close());
    const warnings: string[] = [];
    const logger = createLogger({ level: 'warn', destination: { write: (line: string) => void warnings.push(line) } });
    const feed = new SpicedbWatchFeed({ endpoint: spicedb.endpoint, presharedKey: 'key', tls: false, baseDir: '.', checkedPermissions: ['doc#view'], logger });
    closers.push(() => feed.close());
    const published: Array<Extract<ChangeFeedEvent, { kind: 'changes' }>> = [];
    feed.subscribe((event) => {
      if (event.kind === 'changes') published.push(event);
    });
    const first = await spicedb.next();
    return { spicedb, feed, published, warnings, first };
  }

  const until = async (condition: () => boolean, what: string): Promise<void> => {
    const deadline = Date.now() + 5000;
    while (!condition()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await sleep(5);
    }
  };

  // SpiceDB on Postgres gives each change its own transaction's revision, which may leave out a
  // concurrent change delivered just before it; the checkpoint after the batch includes them all.
  it('holds a batch until its checkpoint and publishes it with the checkpoint’s revision', async () => {
    const { published, first } = await watching();
    first.call.write(changesAt('r1', 'doc:d1#viewer@user:alice'));
    first.call.write(changesAt('r2', 'doc:d9#viewer@user:bob'));
    await sleep(50);
    expect(published).toEqual([]);
    first.call.write(checkpointAt('r3'));
    await until(() => published.length > 0, 'the batch');
    expect(published).toEqual([expect.objectContaining({ revision: 'r3', changes: [change('doc:d1#viewer@user:alice'), change('doc:d9#viewer@user:bob')] })]);
    // Once the stream has sent a checkpoint, the next batch waits for its own however long it takes.
    first.call.write(changesAt('r4', 'doc:d2#viewer@user:alice'));
    await sleep(400);
    expect(published).toHaveLength(1);
    first.call.write(checkpointAt('r5'));
    await until(() => published.length > 1, 'the second batch');
    expect(published[1]).toMatchObject({ revision: 'r5', changes: [change('doc:d2#viewer@user:alice')] });
  });

  it('resumes a stream cut before the checkpoint from the last one: the held changes come again', async () => {
    const { spicedb, published, first } = await watching();
    expect(first.request.optionalStartCursor?.token).toBe('r0');
    first.call.write(changesAt('r1', 'doc:d1#viewer@user:alice'));
    first.call.write(checkpointAt('r2'));
    await until(() => published.length > 0, 'the first batch');
    first.call.write(changesAt('r3', 'doc:d2#viewer@user:alice'));
    first.call.end();
    const second = await spicedb.next();
    expect(second.request.optionalStartCursor?.token).toBe('r2');
    expect(published).toHaveLength(1);
    second.call.write(changesAt('r3', 'doc:d2#viewer@user:alice'));
    second.call.write(checkpointAt('r4'));
    await until(() => published.length > 1, 'the resent batch');
    expect(published[1]).toMatchObject({ revision: 'r4', changes: [change('doc:d2#viewer@user:alice')] });
  });

  it('publishes without a checkpoint from a SpiceDB that sends none, at the newest change’s revision, and says why once', async () => {
    const { published, warnings, first } = await watching();
    first.call.write(changesAt('r1', 'doc:d1#viewer@user:alice'));
    first.call.write(changesAt('r2', 'doc:d2#viewer@user:alice'));
    await until(() => published.length > 0, 'the batch');
    expect(published).toEqual([expect.objectContaining({ revision: 'r2', changes: [change('doc:d1#viewer@user:alice'), change('doc:d2#viewer@user:alice')] })]);
    first.call.write(changesAt('r3', 'doc:d3#viewer@user:alice'));
    await until(() => published.length > 1, 'the next change');
    expect(published[1]).toMatchObject({ revision: 'r3' });
    expect(warnings.filter((line) => line.includes('without a checkpoint'))).toHaveLength(1);
  });
});
