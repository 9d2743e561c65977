import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { join } from 'node:path';
import { Metadata } from '@grpc/grpc-js';
import { v1 } from '@authzed/authzed-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { embeddedDefaults } from '../../src/config/defaults.js';
import { validateConfig } from '../../src/config/load.js';
import { PACKAGE_ROOT } from '../../src/base/package-root.js';
import { checkConfigAgainstSchema } from '../../src/lifecycle/schema-conformance.js';
import { spicedbSchema } from '../../src/spicedb/config.js';
import { parseSchemaModel } from '../../src/spicedb/schema-model.js';
import { readServerSchema } from '../../src/spicedb/server-schema.js';
import { freePort } from '../../dev/ports.js';
import { startSpicedb } from '../../dev/spicedb.js';
import type { SpicedbServer } from '../../dev/spicedb.js';

const PACKAGED_SCHEMA = readFileSync(join(PACKAGE_ROOT, 'examples', 'schema.zed'), 'utf8');
const TIMEOUT_MS = 2000;
const KEY_VARIABLE = 'IT_SCHEMA_SPICEDB_KEY';

let server: SpicedbServer;

function configFor(endpoint: string, presharedKey: string) {
  process.env[KEY_VARIABLE] = presharedKey;
  return spicedbSchema.parse({ endpoint, tls: false, presharedKey: { env: KEY_VARIABLE } });
}

beforeAll(async () => {
  server = await startSpicedb({ schema: PACKAGED_SCHEMA, name: 'spicedb-schema' });
});
afterAll(async () => {
  await server?.stop();
});

describe('reading the schema from a real SpiceDB', () => {
  it('returns the written schema, which parses to the same model as the file and accepts the embedded defaults', async () => {
    const read = await readServerSchema(configFor(server.endpoint, server.presharedKey), '/tmp', TIMEOUT_MS);
    if (!read.ok) throw new Error(read.problem);
    expect(read.origin).toBe(`the schema in SpiceDB at ${server.endpoint}`);
    // SpiceDB hands back its own rendering of the schema, so compare what it says, not its bytes.
    const fromServer = parseSchemaModel(read.schemaText, read.origin);
    const fromFile = parseSchemaModel(PACKAGED_SCHEMA, 'examples/schema.zed');
    if (!fromServer.ok || !fromFile.ok) throw new Error('schema did not parse');
    expect(fromServer.model).toEqual(fromFile.model);
    expect(fromServer.model.definitions.get('cloud')?.permissions.has('create_saga')).toBe(true);
    const { config } = validateConfig(embeddedDefaults('/tmp/jwtauth-defaults'), 'embedded defaults', '/tmp/jwtauth-defaults');
    expect(checkConfigAgainstSchema(config, fromServer.model, read.origin)).toEqual([]);
  });

  it('reports a wrong preshared key as unauthenticated', async () => {
    const read = await readServerSchema(configFor(server.endpoint, 'not-the-key'), '/tmp', TIMEOUT_MS);
    expect(read).toEqual({
      ok: false,
      kind: 'unauthenticated',
      // SpiceDB's own words follow the colon.
      problem: expect.stringMatching(new RegExp(`^SpiceDB at ${server.endpoint} refused the preshared key \\(spicedb\\.presharedKey\\): \\S`)),
    });
  });

  it('reports an address where nothing listens as unreachable, well within the timeout', async () => {
    const endpoint = `127.0.0.1:${await freePort()}`;
    const started = Date.now();
    const read = await readServerSchema(configFor(endpoint, server.presharedKey), '/tmp', TIMEOUT_MS);
    expect(Date.now() - started).toBeLessThan(TIMEOUT_MS);
    expect(read).toEqual({ ok: false, kind: 'unreachable', problem: `SpiceDB at ${endpoint} is unreachable (spicedb.endpoint, spicedb.tls): connect ECONNREFUSED ${endpoint}` });
  });

  it('reports TLS spoken to a plaintext SpiceDB as unreachable, with the TLS error', async () => {
    const read = await readServerSchema({ ...configFor(server.endpoint, server.presharedKey), tls: true }, '/tmp', TIMEOUT_MS);
    expect(read).toEqual({
      ok: false,
      kind: 'unreachable',
      // OpenSSL's reason ("wrong version number"), without its error-record noise.
      problem: expect.stringMatching(new RegExp(`^SpiceDB at ${server.endpoint} is unreachable \\(spicedb\\.endpoint, spicedb\\.tls\\): SSL routines: [a-z ]+$`)),
    });
  });

  it('reports a server that never answers as unreachable once the timeout has passed', async () => {
    const sockets = new Set<Socket>();
    const blackHole: Server = createServer((socket) => sockets.add(socket)); // accepts, never speaks HTTP/2
    await new Promise<void>((resolve) => blackHole.listen(0, '127.0.0.1', resolve));
    const endpoint = `127.0.0.1:${(blackHole.address() as { port: number }).port}`;
    try {
      const started = Date.now();
      const read = await readServerSchema(configFor(endpoint, server.presharedKey), '/tmp', 300);
      expect(Date.now() - started).toBeLessThan(1500);
      expect(read).toEqual({ ok: false, kind: 'unreachable', problem: `SpiceDB at ${endpoint} did not answer ReadSchema within 300 ms (spicedb.endpoint, spicedb.tls)` });
    } finally {
      for (const socket of sockets) socket.destroy();
      blackHole.close();
    }
  });

  it('says so when no endpoint is configured or the key cannot be resolved, without calling anything', async () => {
    expect(await readServerSchema(spicedbSchema.parse({}), '/tmp', TIMEOUT_MS)).toMatchObject({ ok: false, kind: 'not_configured' });
    delete process.env.IT_SCHEMA_UNSET_KEY;
    const unresolvable = spicedbSchema.parse({ endpoint: server.endpoint, tls: false, presharedKey: { env: 'IT_SCHEMA_UNSET_KEY' } });
    expect(await readServerSchema(unresolvable, '/tmp', TIMEOUT_MS)).toEqual({
      ok: false,
      kind: 'not_configured',
      problem: `cannot connect to SpiceDB at ${server.endpoint}: environment variable IT_SCHEMA_UNSET_KEY is not set`,
    });
  });

  // Last: it removes the schema the other tests read.
  it('reports a SpiceDB without a schema as having none', async () => {
    await server.client.promises.writeSchema(v1.WriteSchemaRequest.create({ schema: '' }), new Metadata(), { deadline: Date.now() + 5000 });
    const read = await readServerSchema(configFor(server.endpoint, server.presharedKey), '/tmp', TIMEOUT_MS);
    expect(read).toEqual({ ok: false, kind: 'no_schema', problem: `SpiceDB at ${server.endpoint} has no schema yet; write one first (zed schema write)` });
  });
});
