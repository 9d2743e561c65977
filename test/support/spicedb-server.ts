/**
 * A real SpiceDB (the pinned binary in .tools/bin) for integration tests: in-memory datastore,
 * plaintext gRPC on 127.0.0.1, a preshared key. Started per test file; restart() brings it back
 * on the same port with the same schema and relationships (the memory datastore forgets them).
 */
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Metadata, status } from '@grpc/grpc-js';
import type { ServiceError } from '@grpc/grpc-js';
import { v1 } from '@authzed/authzed-node';
import { toRelationship } from '../../src/spicedb/embedded-checker.js';
import { parseRelationships } from '../../src/spicedb/relationships-file.js';
import { freePort } from '../../dev/ports.js';
import { startProcess, TOOLS_BIN, waitFor } from '../../dev/processes.js';
import type { ManagedProcess } from '../../dev/processes.js';

export const SPICEDB_BIN = join(TOOLS_BIN, 'spicedb');

export interface SpicedbServer {
  readonly endpoint: string;
  readonly port: number;
  readonly presharedKey: string;
  /** The running server's pid (changes on restart). */
  readonly pid: number | undefined;
  /** Writes relationships in relationships-file notation (`cloud:cl0#admin@user:alice`). */
  write(lines: string, operation?: 'touch' | 'delete'): Promise<string>;
  stop(): Promise<void>;
  restart(): Promise<void>;
}

/** Waits for the binary: another process may still be building it. */
async function waitForBinary(): Promise<void> {
  const deadline = Date.now() + 10 * 60_000;
  while (!existsSync(SPICEDB_BIN)) {
    if (Date.now() > deadline) throw new Error(`${SPICEDB_BIN} did not appear`);
    await sleep(2000);
  }
}

function call<T>(fn: (cb: (error: ServiceError | null, value?: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => fn((error, value) => (error ? reject(error) : resolve(value as T))));
}

export async function startSpicedb(options: { schema: string; relationships?: string; presharedKey?: string; args?: string[] }): Promise<SpicedbServer> {
  await waitForBinary();
  const port = await freePort();
  // Random, so a client that reached another SpiceDB by mistake fails UNAUTHENTICATED instead of writing into it.
  const presharedKey = options.presharedKey ?? `test-key-${randomUUID()}`;
  const endpoint = `127.0.0.1:${port}`;
  let proc: ManagedProcess | undefined;
  let client: v1.ZedClientInterface | undefined;

  const write = async (lines: string, operation: 'touch' | 'delete' = 'touch'): Promise<string> => {
    const updates = parseRelationships(lines, 'test').map((line) =>
      v1.RelationshipUpdate.create({
        operation: operation === 'touch' ? v1.RelationshipUpdate_Operation.TOUCH : v1.RelationshipUpdate_Operation.DELETE,
        relationship: toRelationship(line),
      }),
    );
    const response = await call<v1.WriteRelationshipsResponse>((cb) =>
      client!.writeRelationships(v1.WriteRelationshipsRequest.create({ updates }), new Metadata(), { deadline: Date.now() + 5000 }, cb),
    );
    return response.writtenAt?.token ?? '';
  };

  const start = async (): Promise<void> => {
    proc = startProcess(SPICEDB_BIN, [
      'serve',
      '--grpc-preshared-key',
      presharedKey,
      '--datastore-engine',
      'memory',
      '--grpc-addr',
      endpoint,
      '--http-enabled=false',
      '--metrics-enabled=false',
      '--dispatch-cluster-enabled=false',
      '--telemetry-endpoint=',
      '--log-level=warn',
      ...(options.args ?? []),
    ]);
    client?.close();
    client = v1.NewClient(presharedKey, endpoint, v1.ClientSecurity.INSECURE_PLAINTEXT_CREDENTIALS);
    const current = proc;
    await waitFor(
      async () => {
        if (current.child.exitCode !== null) throw new Error('exited');
        try {
          await call((cb) => client!.writeSchema(v1.WriteSchemaRequest.create({ schema: options.schema }), new Metadata(), { deadline: Date.now() + 2000 }, cb));
          return true;
        } catch (error) {
          if ((error as ServiceError).code === status.UNAVAILABLE || (error as ServiceError).code === status.DEADLINE_EXCEEDED) return false;
          throw new Error(`WriteSchema failed: ${(error as Error).message}`);
        }
      },
      30_000,
      () => `spicedb on ${endpoint} did not come up:\n${current.output()}`,
    );
    if (options.relationships) await write(options.relationships);
  };

  await start();
  return {
    endpoint,
    port,
    presharedKey,
    get pid() {
      return proc?.child.pid;
    },
    write,
    async stop() {
      await proc?.stop('SIGKILL');
      client?.close();
      client = undefined;
    },
    async restart() {
      await proc?.stop('SIGKILL');
      await start();
    },
  };
}
