/**
 * A real SpiceDB (the pinned binary in .tools/bin) for the tests, the bench and the demo: memory
 * or Postgres datastore, gRPC on 127.0.0.1 (plaintext, or TLS with a given certificate), a
 * preshared key passed in the environment (never on the command line, where any local user could
 * read it), seeded with a schema and relationships.
 *
 * Seeding is not done until a `minimize_latency` read sees it. SpiceDB answers such reads at a
 * revision rounded down to its quantization interval (5 s by default). A memory datastore whose
 * start and seeding straddle a 5 s boundary therefore answers from the empty snapshot taken at
 * start ("object definition `cloud` not found", or a plain deny) until the next boundary: that is
 * what failed the demo and the SpiceDB integration tests on loaded CI runs. The quantization
 * itself stays at SpiceDB's default, so tests still meet the staleness production has.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { randomUUID } from 'node:crypto';
import { Metadata, status } from '@grpc/grpc-js';
import type { ServiceError } from '@grpc/grpc-js';
import { v1 } from '@authzed/authzed-node';
import { toRelationship } from '../src/spicedb/embedded-checker.js';
import { parseRelationships } from '../src/spicedb/relationships-file.js';
import type { RelationshipLine } from '../src/spicedb/relationships-file.js';
import { freePort } from './ports.js';
import { GiveUp, startProcess, TOOLS_BIN, waitFor } from './processes.js';
import type { ManagedProcess } from './processes.js';

const SPICEDB_BIN = join(TOOLS_BIN, 'spicedb');

/** Longer than a quantization interval (5 s) plus its 10% staleness allowance. */
const SEED_VISIBLE_TIMEOUT_MS = 15_000;
/** That staleness allowance (0.5 s), and scheduling slack. */
const STALE_REVISION_MS = 700;

/**
 * Where SpiceDB keeps schema and relationships: memory (gone when it stops), or a Postgres database
 * (dev/postgres.ts), migrated to SpiceDB's latest schema before the first start.
 */
export type SpicedbDatastore = { readonly engine: 'memory' } | { readonly engine: 'postgres'; readonly uri: string };

export interface SpicedbOptions {
  readonly schema: string;
  /** Relationships-file notation (`cloud:cl0#admin@user:alice`), one per line. */
  readonly relationships?: string;
  /** Default: a random one. */
  readonly presharedKey?: string;
  /** Default: a free one. */
  readonly port?: number;
  /** Default: memory. */
  readonly datastore?: SpicedbDatastore;
  /** The process's name in output and failure messages. */
  readonly name?: string;
  readonly startTimeoutMs?: number;
  /**
   * Serve gRPC over TLS with this certificate and key (PEM files); `caFile` is what the seeding
   * client trusts, so it must be the CA that issued the certificate. Default: plaintext.
   */
  readonly tls?: { readonly certFile: string; readonly keyFile: string; readonly caFile: string };
}

export interface SpicedbServer {
  readonly endpoint: string;
  readonly port: number;
  readonly presharedKey: string;
  /** The running server (changes on restart). */
  readonly process: ManagedProcess;
  /** A client holding the preshared key: the operator's view. */
  readonly client: v1.ZedClientInterface;
  /** Writes relationships in relationships-file notation; returns the write's ZedToken. */
  write(lines: string, operation?: 'touch' | 'delete'): Promise<string>;
  stop(): Promise<void>;
  /**
   * Starts it again on the same port. Memory forgot everything, so the schema and seed relationships
   * are written again; Postgres kept them and whatever was written since, so nothing is rewritten.
   */
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

const MINIMIZE_LATENCY = v1.Consistency.create({ requirement: { oneofKind: 'minimizeLatency', minimizeLatency: true } });

/**
 * Reads what a sidecar's default check would read: the last seeded relationship, or (with none)
 * any relationship of the schema's first definition, which fails while the schema is not visible.
 */
function seedProbe(schema: string, last: RelationshipLine | undefined): { request: v1.ReadRelationshipsRequest; rowsNeeded: number } {
  if (last === undefined) {
    const firstDefinition = /definition\s+([a-z][a-z0-9_/]*)/.exec(schema)?.[1] ?? '';
    return { request: v1.ReadRelationshipsRequest.create({ consistency: MINIMIZE_LATENCY, relationshipFilter: { resourceType: firstDefinition } }), rowsNeeded: 0 };
  }
  const filter = v1.RelationshipFilter.create({
    resourceType: last.resource.type,
    optionalResourceId: last.resource.id,
    optionalRelation: last.relation,
    optionalSubjectFilter: { subjectType: last.subject.type, optionalSubjectId: last.subject.id },
  });
  return { request: v1.ReadRelationshipsRequest.create({ consistency: MINIMIZE_LATENCY, relationshipFilter: filter }), rowsNeeded: 1 };
}

export async function startSpicedb(options: SpicedbOptions): Promise<SpicedbServer> {
  await waitForBinary();
  const port = options.port ?? (await freePort());
  // Random, so a client that reached another SpiceDB by mistake fails UNAUTHENTICATED instead of writing into it.
  const presharedKey = options.presharedKey ?? `test-key-${randomUUID()}`;
  const endpoint = `127.0.0.1:${port}`;
  const name = options.name ?? 'spicedb';
  const datastore: SpicedbDatastore = options.datastore ?? { engine: 'memory' };
  // The connection URI goes in the environment like the key: it may carry a password.
  const env = { ...process.env, SPICEDB_GRPC_PRESHARED_KEY: presharedKey, ...(datastore.engine === 'postgres' ? { SPICEDB_DATASTORE_CONN_URI: datastore.uri } : {}) };
  /** Whether the datastore still holds what an earlier start wrote (Postgres does, memory does not). */
  let written = false;
  const tls = options.tls;
  const seed = options.relationships === undefined ? [] : parseRelationships(options.relationships, name);
  const probe = seedProbe(options.schema, seed.at(-1));
  const deadline = (ms: number): { deadline: number } => ({ deadline: Date.now() + ms });
  let proc: ManagedProcess | undefined;
  let client: v1.ZedClientInterface | undefined;
  const connected = (): v1.ZedClientInterface => {
    if (client === undefined) throw new Error(`${name} is stopped`);
    return client;
  };

  const writeLines = async (lines: readonly RelationshipLine[], operation: 'touch' | 'delete'): Promise<string> => {
    const updates = lines.map((line) =>
      v1.RelationshipUpdate.create({
        operation: operation === 'touch' ? v1.RelationshipUpdate_Operation.TOUCH : v1.RelationshipUpdate_Operation.DELETE,
        relationship: toRelationship(line),
      }),
    );
    const response = await connected().promises.writeRelationships(v1.WriteRelationshipsRequest.create({ updates }), new Metadata(), deadline(5000));
    return response.writtenAt?.token ?? '';
  };

  const start = async (): Promise<void> => {
    // A stopped server's client is closed for good (grpc-js); a restart gets a new one.
    client = tls
      ? v1.NewClientWithCustomCert(presharedKey, endpoint, readFileSync(tls.caFile))
      : v1.NewClient(presharedKey, endpoint, v1.ClientSecurity.INSECURE_PLAINTEXT_CREDENTIALS);
    const current = startProcess(
      SPICEDB_BIN,
      [
        'serve',
        '--datastore-engine', datastore.engine,
        '--grpc-addr', endpoint,
        ...(tls ? ['--grpc-tls-cert-path', tls.certFile, '--grpc-tls-key-path', tls.keyFile] : []),
        '--http-enabled=false',
        '--metrics-enabled=false',
        '--dispatch-cluster-enabled=false',
        '--telemetry-endpoint=',
        '--skip-release-check=true',
        '--log-level=warn',
      ],
      { name, env },
    );
    proc = current;
    const exited = (): void => {
      if (current.child.exitCode !== null) throw new GiveUp(`${name} exited with ${current.child.exitCode}`);
    };
    await waitFor(
      async () => {
        exited();
        try {
          if (written) await connected().promises.readSchema(v1.ReadSchemaRequest.create({}), new Metadata(), deadline(2000));
          else await connected().promises.writeSchema(v1.WriteSchemaRequest.create({ schema: options.schema }), new Metadata(), deadline(2000));
          return true;
        } catch (error) {
          const code = (error as ServiceError).code;
          if (code === status.UNAVAILABLE || code === status.DEADLINE_EXCEEDED) return false;
          throw new GiveUp(`${written ? 'ReadSchema' : 'WriteSchema'} failed: ${(error as Error).message}`);
        }
      },
      options.startTimeoutMs ?? 30_000,
      () => `${name} on ${endpoint} did not come up:\n${current.output()}`,
    );
    // What Postgres kept is served at once; a seed probe could wait for a relationship deleted since.
    if (written) return;
    if (seed.length > 0) await writeLines(seed, 'touch');
    await waitFor(
      async () => {
        exited();
        const rows = await connected().promises.readRelationships(probe.request, new Metadata(), deadline(2000));
        return rows.length >= probe.rowsNeeded;
      },
      SEED_VISIBLE_TIMEOUT_MS,
      () => `${name}: the seeded schema and relationships never became visible to minimize_latency reads:\n${current.output()}`,
    );
    if (datastore.engine === 'postgres') {
      // For the staleness allowance after a quantization window ends, SpiceDB on Postgres may still
      // answer from the window's revision, from before the seeding, even after the probe's read
      // came from a newer one: a check 20 ms after the probe was seen denied. Past the allowance,
      // every revision it can pick includes the seeding.
      await sleep(STALE_REVISION_MS);
      written = true;
    }
  };

  /** Brings a Postgres database to SpiceDB's latest schema; `serve` refuses to run on an older one. */
  const migrate = async (): Promise<void> => {
    const migration = startProcess(SPICEDB_BIN, ['datastore', 'migrate', 'head', '--datastore-engine', 'postgres', '--skip-release-check=true', '--log-level=warn'], {
      name: `${name} migrate`,
      env,
    });
    const code = await migration.exited;
    if (code !== 0) throw new Error(`${name}: spicedb datastore migrate head exited with ${code}:\n${migration.output()}`);
  };

  const stop = async (): Promise<void> => {
    await proc?.stop('SIGKILL');
    client?.close();
    client = undefined;
  };

  try {
    if (datastore.engine === 'postgres') await migrate();
    await start();
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    endpoint,
    port,
    presharedKey,
    get process() {
      return proc as ManagedProcess;
    },
    get client() {
      return connected();
    },
    write: (lines, operation = 'touch') => writeLines(parseRelationships(lines, name), operation),
    stop,
    async restart() {
      await stop();
      await start();
    },
  };
}
