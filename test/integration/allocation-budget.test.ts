/**
 * Garbage per Check is what sets the tail: every ~1 MB allocated is a scavenge, and each scavenge
 * is a pause every Check in flight waits out (docs/benchmarks.md). So a cached answer, inbound or
 * outbound, must allocate at most the budget: 8 KiB per Check, plus a quarter for what differs
 * between machines and Node patch releases. Measured in this process over a warm loop, from the
 * CheckRequest bytes to the framed CheckResponse (dev/in-process-sidecar.ts: the decoder, the
 * pipeline over its real adapters and a real SpiceDB, the decision log and metrics, the answer
 * encoder), with V8's own heap sizes before and after each collection (dev/heap-allocation.ts).
 * The HTTP/2 listener is left out: what node:http2 allocates per stream is not ours to cut.
 * Speed is never asserted here: that is `npm run bench`'s job.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allocationPerCheck, encodeCheckRequest, envoyShapedCheckRequest, openInProcessSidecar, waitUntilReady } from '../../dev/in-process-sidecar.js';
import type { InProcessSidecar } from '../../dev/in-process-sidecar.js';
import { writeSidecarConfig } from '../../dev/sidecar.js';
import { startSpicedb } from '../../dev/spicedb.js';
import type { SpicedbServer } from '../../dev/spicedb.js';
import { loadConfigFile } from '../../src/config/load.js';
import { createLogger } from '../../src/observability/logger.js';
import { jwks, makeSigningKey, nowSeconds, signToken } from '../../dev/jwt-fixtures.js';

const BUDGET_BYTES = 8 * 1024;
const MARGIN = 1.25;
const CHECKS = 5_000;

const SCHEMA = `
definition user {}
definition cloud {
  relation member: user
  permission view = member
}
`;

let spicedb: SpicedbServer;
let sidecar: InProcessSidecar;
let token: string;

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'jwtauth-allocation-'));
  const key = await makeSigningKey('ES256', 'corp-1');
  writeFileSync(join(dir, 'corp.json'), JSON.stringify(jwks(key)));
  const mintKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  writeFileSync(join(dir, 'mint.pem'), mintKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
  spicedb = await startSpicedb({ schema: SCHEMA, relationships: 'cloud:cl0#member@user:alice', name: 'allocation-spicedb' });
  process.env.ALLOCATION_SPICEDB_KEY = spicedb.presharedKey;
  const configPath = writeSidecarConfig(
    {
      server: { drainSeconds: 0 },
      // As deployed: allows are not logged line by line.
      log: { level: 'warn' },
      service: { name: 'gwadmin' },
      issuers: [{ name: 'corp', issuer: 'https://corp.example', audience: 'gwadmin', kind: 'internal', subjectType: 'user', jwks: { file: 'corp.json' } }],
      spicedb: { endpoint: spicedb.endpoint, tls: false, presharedKey: { env: 'ALLOCATION_SPICEDB_KEY' } },
      tokens: { source: { kind: 'mint', issuer: 'https://gwadmin.mesh', algorithm: 'ES256', keys: [{ file: 'mint.pem' }] } },
      inbound: {
        default: 'deny',
        rules: [{ name: 'view-cloud', match: { http: { methods: ['GET'], path: '/v1/clouds/{cloud}/**' } }, checks: [{ resource: 'cloud:{path.cloud}', permission: 'view' }] }],
      },
      outbound: { upstreams: [{ audience: 'vmcontroller', authorities: [] }] },
    },
    dir,
  );
  const loaded = loadConfigFile(configPath);
  sidecar = await openInProcessSidecar(loaded, createLogger({ level: loaded.config.log.level }));
  await waitUntilReady(sidecar);
  token = await signToken(key, { iss: 'https://corp.example', sub: 'alice', aud: 'gwadmin', iat: nowSeconds(), exp: nowSeconds() + 3600 });
});

afterAll(async () => {
  await sidecar?.close();
  await spicedb?.stop();
});

describe(`a cached answer allocates at most ${BUDGET_BYTES} bytes per Check (+${(MARGIN - 1) * 100}%)`, () => {
  const cases = [
    ['an inbound allow', () => envoyShapedCheckRequest('/v1/clouds/cl0/namespaces', { authorization: `Bearer ${token}` }, { direction: 'inbound' }), 'allowed'],
    ['an inbound denial', () => envoyShapedCheckRequest('/v1/clouds/cl1/namespaces', { authorization: `Bearer ${token}` }, { direction: 'inbound' }), 'permission_denied'],
    ['an outbound allow with a cached service token', () => envoyShapedCheckRequest('/v1/vms', {}, { direction: 'outbound', audience: 'vmcontroller' }), 'service_token_attached'],
  ] as const;

  it.each(cases)('%s', async (_name, request, reason) => {
    const bytes = encodeCheckRequest(request());
    // The answer measured is the one named: a loop of refusals would prove nothing about allows.
    const answer = (await sidecar.check(bytes)).toString('latin1');
    if (reason === 'permission_denied') expect(answer).toContain(reason);
    else expect(answer).not.toContain('x-jwtauth-reason');
    const measured = await allocationPerCheck(sidecar, bytes, CHECKS);
    expect(measured.bytesPerCheck).toBeLessThanOrEqual(BUDGET_BYTES * MARGIN);
  });
});
