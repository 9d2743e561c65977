import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MetricValueWithName } from 'prom-client';
import type { PermissionQuery } from '../../src/core/ports.js';
import type { RequestContext } from '../../src/core/request-context.js';
import { issuersSchema } from '../../src/identity/config.js';
import { createTokenVerifier } from '../../src/identity/token-verifier.js';
import { inboundSchema } from '../../src/inbound/config.js';
import { createInboundAuthorizer } from '../../src/inbound/inbound-authorizer.js';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import { spicedbSchema } from '../../src/spicedb/config.js';
import { createPermissionChecker } from '../../src/spicedb/permission-checker.js';
import { jwks, makeSigningKey, nowSeconds, signToken } from '../../dev/jwt-fixtures.js';
import { waitFor } from '../../dev/processes.js';
import { throwawayDatastore } from '../../dev/postgres.js';
import type { ThrowawayDatastore } from '../../dev/postgres.js';
import { startSpicedb } from '../../dev/spicedb.js';
import type { SpicedbServer } from '../../dev/spicedb.js';

const SCHEMA = `
caveat in_region(region string, allowed string) {
  region == allowed
}

definition user {}

definition service {}

definition group {
    relation member: user
}

definition platform {
    relation relationship_writer: service
    permission write_relationships = relationship_writer
}

definition cloud {
    relation admin: user
    relation saga_creator: user
    relation viewer: user with in_region | group#member
    permission create_saga = saga_creator + admin
    permission view = admin + viewer
}
`;

const RELATIONSHIPS = `
cloud:cl0#admin@user:alice
cloud:cl0#saga_creator@user:=cloud-teleport-aleksander=2Erykalin
cloud:cl0#viewer@user:carol[in_region:{"allowed":"eu"}]
platform:spicedb#relationship_writer@service:vmcontroller
cloud:cl0#viewer@group:ops#member
`;

const logger = createLogger({ level: 'silent' });
let server: SpicedbServer;
const dir = mkdtempSync(join(tmpdir(), 'spicedb-it-'));

function config(overrides: Record<string, unknown> = {}) {
  process.env.IT_SPICEDB_KEY = server.presharedKey;
  return spicedbSchema.parse({ endpoint: server.endpoint, tls: false, presharedKey: { env: 'IT_SPICEDB_KEY' }, deadlineMs: 1000, ...overrides });
}

const q = (permission: string, subject: string, extra: Partial<PermissionQuery> = {}): PermissionQuery => ({
  resource: { type: 'cloud', id: 'cl0' },
  permission,
  subject: { type: 'user', id: subject },
  consistency: { kind: 'minimize_latency' },
  ...extra,
});

// Every test against each datastore users run SpiceDB on: Postgres keeps its data across the
// restart in the outage test, memory does not; both must answer the same.
describe.each(['memory', 'postgres'] as const)('on SpiceDB with the %s datastore', (engine) => {
  let datastore: ThrowawayDatastore | undefined;
  beforeAll(async () => {
    datastore = await throwawayDatastore(engine);
    server = await startSpicedb({ schema: SCHEMA, relationships: RELATIONSHIPS, datastore: datastore.datastore });
  });
  afterAll(async () => {
    await server?.stop();
    await datastore?.stop();
  });

  describe('SpiceDB checker against a real SpiceDB', () => {
    it('answers allowed, denied (missing relation) and conditional (missing caveat context)', async () => {
      const checker = await createPermissionChecker(config(), { metrics: new Metrics({ processMetrics: false }), logger, baseDir: dir });
      try {
        expect(await checker.check(q('create_saga', 'alice'))).toEqual({ ok: true, value: { permissionship: 'allowed', cached: false } });
        expect(await checker.check(q('create_saga', 'bob'))).toEqual({ ok: true, value: { permissionship: 'denied', cached: false } });
        expect(await checker.check(q('view', 'carol'))).toEqual({ ok: true, value: { permissionship: 'conditional', cached: false } });
        expect(await checker.check(q('view', 'carol', { context: { region: 'eu' } }))).toEqual({ ok: true, value: { permissionship: 'allowed', cached: false } });
        expect(await checker.check(q('view', 'carol', { context: { region: 'us' } }))).toEqual({ ok: true, value: { permissionship: 'denied', cached: false } });
        expect(await checker.check(q('no_such_permission', 'alice'))).toMatchObject({ ok: false, reason: 'invalid_check_input' });
      } finally {
        await checker.close();
      }
    });

    it('answers each check of one call on its own: a subject set, an allow, an error and a deny, in order', async () => {
      const checker = await createPermissionChecker(config({ decisionCache: { ttlMs: 0 }, batch: { maxConcurrentCalls: 1, maxItems: 10 } }), {
        metrics: new Metrics({ processMetrics: false }),
        logger,
        baseDir: dir,
      });
      try {
        // Asked in one turn of the event loop, so they leave in one CheckBulkPermissions call.
        const answers = await Promise.all([
          checker.check(q('view', 'ops', { subject: { type: 'group', id: 'ops', relation: 'member' } })),
          checker.check(q('view', 'dev', { subject: { type: 'group', id: 'dev', relation: 'member' } })),
          checker.check(q('create_saga', 'alice')),
          checker.check(q('no_such_permission', 'alice')),
          checker.check(q('create_saga', 'bob')),
        ]);
        expect(answers.map((a) => (a.ok ? a.value.permissionship : a.reason))).toEqual(['allowed', 'denied', 'allowed', 'invalid_check_input', 'denied']);
      } finally {
        await checker.close();
      }
    });

    it('sees a fresh write with at_least_as_fresh and the ZedToken from that write', async () => {
      const checker = await createPermissionChecker(config(), { metrics: new Metrics({ processMetrics: false }), logger, baseDir: dir });
      try {
        const zedToken = await server.write('cloud:cl0#saga_creator@user:dave');
        expect(await checker.check(q('create_saga', 'dave', { consistency: { kind: 'at_least_as_fresh', zedToken } }))).toMatchObject({ ok: true, value: { permissionship: 'allowed' } });
        await server.write('cloud:cl0#saga_creator@user:dave', 'delete');
        expect(await checker.check(q('create_saga', 'dave', { consistency: { kind: 'fully_consistent' } }))).toMatchObject({ ok: true, value: { permissionship: 'denied' } });
      } finally {
        await checker.close();
      }
    });

    it('fails with permission_backend_timeout when SpiceDB does not answer within the deadline', async () => {
      const sockets = new Set<Socket>();
      const blackHole: Server = createServer((socket) => sockets.add(socket)); // accepts, never speaks HTTP/2
      await new Promise<void>((resolve) => blackHole.listen(0, '127.0.0.1', resolve));
      const port = (blackHole.address() as { port: number }).port;
      process.env.IT_SPICEDB_KEY = server.presharedKey;
      const checker = await createPermissionChecker(
        spicedbSchema.parse({ endpoint: `127.0.0.1:${port}`, tls: false, presharedKey: { env: 'IT_SPICEDB_KEY' }, deadlineMs: 200 }),
        { metrics: new Metrics({ processMetrics: false }), logger, baseDir: dir },
      );
      try {
        const started = Date.now();
        expect(await checker.check(q('create_saga', 'alice'))).toMatchObject({ ok: false, reason: 'permission_backend_timeout' });
        expect(Date.now() - started).toBeLessThan(1000);
      } finally {
        await checker.close();
        for (const socket of sockets) socket.destroy();
        blackHole.close();
      }
    });

    it('answers 200 concurrent checks correctly through fewer, fuller CheckBulkPermissions calls', async () => {
      const metrics = new Metrics({ processMetrics: false });
      const checker = await createPermissionChecker(config({ decisionCache: { ttlMs: 0 }, batch: { maxConcurrentCalls: 2, maxItems: 50 } }), { metrics, logger, baseDir: dir });
      try {
        const lines = Array.from({ length: 100 }, (_, i) => `cloud:bulk${i}#admin@user:alice`).join('\n');
        const consistency = { kind: 'at_least_as_fresh', zedToken: await server.write(lines) } as const;
        const answers = await Promise.all(
          Array.from({ length: 200 }, (_, i) => checker.check({ ...q('view', 'alice', { consistency }), resource: { type: 'cloud', id: `bulk${i}` } })),
        );
        // Each answer is its own check's: alice administers bulk0-99 only.
        expect(answers.map((a) => (a.ok ? a.value.permissionship : a.reason))).toEqual([...Array(100).fill('allowed'), ...Array(100).fill('denied')]);
        const perCall = (await metrics.registry.getSingleMetric('jwtauth_spicedb_checks_per_call')!.get()).values as MetricValueWithName<string>[];
        const sample = (name: string): number => perCall.find((v) => v.metricName === name)?.value ?? NaN;
        expect(sample('jwtauth_spicedb_checks_per_call_sum')).toBe(200);
        expect(sample('jwtauth_spicedb_checks_per_call_count')).toBeLessThanOrEqual(200 / 50 + 2);
      } finally {
        await checker.close();
      }
    });

    it('serves cached decisions while SpiceDB is down, answers 503 reasons for the rest, and recovers after restart', async () => {
      const checker = await createPermissionChecker(config({ decisionCache: { ttlMs: 5000 } }), {
        metrics: new Metrics({ processMetrics: false }),
        logger,
        baseDir: dir,
      });
      try {
        expect(await checker.check(q('create_saga', 'alice'))).toMatchObject({ ok: true, value: { permissionship: 'allowed', cached: false } });
        await server.stop();
        expect(await checker.check(q('create_saga', 'alice'))).toMatchObject({ ok: true, value: { permissionship: 'allowed', cached: true } });
        const down = await checker.check(q('view', 'alice'));
        // Connection refused is UNAVAILABLE: retried once, then reported, never an allow.
        expect(down).toMatchObject({ ok: false, reason: 'permission_backend_unavailable' });
        expect(checker.ready()).toBe(false);
        await server.restart();
        await waitFor(async () => (await checker.check(q('view', 'alice'))).ok, 15_000, () => 'checker did not recover');
        expect(checker.ready()).toBe(true);
      } finally {
        await checker.close();
      }
    });
  });

  describe('inbound path end to end: real JWT verification and real SpiceDB', () => {
    let request: (path: string, token: string, grpc?: [string, string]) => RequestContext;
    let authorizer: ReturnType<typeof createInboundAuthorizer>;
    let sign: (sub: string, iss: string) => Promise<string>;
    let close: () => Promise<void>;

    beforeAll(async () => {
      const userKey = await makeSigningKey('ES256', 'teleport-1');
      const meshKey = await makeSigningKey('ES256', 'mesh-1');
      writeFileSync(join(dir, 'teleport.json'), JSON.stringify(jwks(userKey)));
      writeFileSync(join(dir, 'mesh.json'), JSON.stringify(jwks(meshKey)));
      const metrics = new Metrics({ processMetrics: false });
      const verifier = await createTokenVerifier(
        issuersSchema.parse([
          { name: 'teleport', issuer: 'https://teleport', audience: 'gwadmin', kind: 'external', subjectType: 'user', jwks: { file: 'teleport.json' }, algorithms: ['ES256'] },
          { name: 'mesh', issuer: 'https://mesh', audience: 'spicedb', kind: 'internal', subjectType: 'service', jwks: { file: 'mesh.json' }, algorithms: ['ES256'] },
        ]),
        { metrics, logger, baseDir: dir },
      );
      const checker = await createPermissionChecker(config(), { metrics, logger, baseDir: dir });
      authorizer = createInboundAuthorizer(
        inboundSchema.parse({
          rules: [
            {
              name: 'write-relationships',
              match: { grpc: { service: 'authzed.api.v1.PermissionsService', method: 'WriteRelationships' } },
              audience: 'spicedb',
              issuerKinds: ['internal'],
              checks: [{ resource: 'platform:spicedb', permission: 'write_relationships' }],
            },
            { name: 'create-saga', match: { http: { methods: ['POST'], path: '/v1/clouds/{cloud}/sagas' } }, checks: [{ resource: 'cloud:{path.cloud}', permission: 'create_saga' }] },
          ],
        })!,
        { verifier, checker, maxTokenBytes: 8192 },
        { root: undefined, maxBytes: 65_536 },
      );
      sign = (sub, iss) =>
        signToken(iss === 'https://mesh' ? meshKey : userKey, { iss, sub, aud: iss === 'https://mesh' ? 'spicedb' : 'gwadmin', iat: nowSeconds(), exp: nowSeconds() + 300 });
      request = (path, token, grpc) => ({
        direction: 'inbound',
        requestId: '',
        authority: 'gw',
        method: 'POST',
        path,
        query: '',
        grpc: grpc ? { service: grpc[0], method: grpc[1] } : undefined,
        headers: new Map([['authorization', `Bearer ${token}`]]),
        duplicateHeaders: new Set(),
        peerPrincipal: undefined,
        contextExtensions: { direction: 'inbound' },
        body: undefined,
      });
      close = async () => {
        await verifier.close();
        await checker.close();
      };
    });
    afterAll(async () => close?.());

    it('lets the dotted Teleport user start a saga thanks to subject-id escaping', async () => {
      const decision = await authorizer.decide(request('/v1/clouds/cl0/sagas', await sign('cloud-teleport-aleksander.rykalin', 'https://teleport')));
      expect(decision).toMatchObject({ kind: 'allow', setHeaders: expect.arrayContaining([['x-jwtauth-subject', 'cloud-teleport-aleksander.rykalin']]) });
      expect(await authorizer.decide(request('/v1/clouds/cl0/sagas', await sign('mallory.x', 'https://teleport')))).toMatchObject({ status: 403, reason: 'permission_denied' });
    });

    it('authorizes the seed WriteRelationships call for vmcontroller only', async () => {
      const grpc: [string, string] = ['authzed.api.v1.PermissionsService', 'WriteRelationships'];
      const path = '/authzed.api.v1.PermissionsService/WriteRelationships';
      expect(await authorizer.decide(request(path, await sign('vmcontroller', 'https://mesh'), grpc))).toMatchObject({ kind: 'allow', facts: { subjectType: 'service' } });
      expect(await authorizer.decide(request(path, await sign('billing', 'https://mesh'), grpc))).toMatchObject({ status: 403, reason: 'permission_denied' });
      expect(await authorizer.decide(request(path, await sign('alice', 'https://teleport'), grpc))).toMatchObject({ status: 401 });
    });
  });
});
