/**
 * The sidecar and SpiceDB as processes, for the compiled benchmark. test/support has helpers for
 * both, but they locate .tools/bin and dist/src/cli.js relative to their own source folder, which
 * is wrong once compiled into dist/test/support; these resolve from the repository root instead.
 * Process lifetime (kill on exit) still comes from test/support/processes.ts.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Metadata, status } from '@grpc/grpc-js';
import type { ServiceError } from '@grpc/grpc-js';
import { v1 } from '@authzed/authzed-node';
import { stringify } from 'yaml';
import { freePort, startProcess, waitFor } from '../test/support/processes.js';
import type { ManagedProcess } from '../test/support/processes.js';

export const ROOT = new URL('../../', import.meta.url).pathname;
export const TOOLS = join(ROOT, '.tools/bin');
/** BENCH_SIDECAR_CLI runs another build of the sidecar (e.g. a worktree at an older commit) for before/after runs. */
export const CLI = process.env.BENCH_SIDECAR_CLI ?? join(ROOT, 'dist/src/cli.js');

function call<T>(fn: (cb: (error: ServiceError | null, value?: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => fn((error, value) => (error ? reject(error) : resolve(value as T))));
}

export interface BenchSpicedb {
  readonly endpoint: string;
  readonly presharedKey: string;
  readonly process: ManagedProcess;
  /** Touches relationships given as `type:id#relation@type:id`. */
  write(lines: readonly string[]): Promise<void>;
  stop(): Promise<void>;
}

function relationship(line: string): v1.Relationship {
  const match = /^([\w/]+):([^#]+)#(\w+)@([\w/]+):([^#]+)$/.exec(line);
  if (!match) throw new Error(`not a relationship: ${line}`);
  const [, rt, rid, rel, st, sid] = match as unknown as [string, string, string, string, string, string];
  return v1.Relationship.create({
    resource: v1.ObjectReference.create({ objectType: rt, objectId: rid }),
    relation: rel,
    subject: v1.SubjectReference.create({ object: v1.ObjectReference.create({ objectType: st, objectId: sid }), optionalRelation: '' }),
  });
}

export async function startBenchSpicedb(schema: string): Promise<BenchSpicedb> {
  const port = await freePort();
  const endpoint = `127.0.0.1:${port}`;
  const presharedKey = `bench-${port}`;
  const proc = startProcess(join(TOOLS, 'spicedb'), [
    'serve', '--grpc-preshared-key', presharedKey, '--datastore-engine', 'memory', '--grpc-addr', endpoint,
    '--http-enabled=false', '--metrics-enabled=false', '--dispatch-cluster-enabled=false', '--telemetry-endpoint=', '--log-level=warn',
  ]);
  const client = v1.NewClient(presharedKey, endpoint, v1.ClientSecurity.INSECURE_PLAINTEXT_CREDENTIALS);
  await waitFor(
    async () => {
      if (proc.child.exitCode !== null) throw new Error('exited');
      try {
        await call((cb) => client.writeSchema(v1.WriteSchemaRequest.create({ schema }), new Metadata(), { deadline: Date.now() + 2000 }, cb));
        return true;
      } catch (error) {
        const code = (error as ServiceError).code;
        if (code === status.UNAVAILABLE || code === status.DEADLINE_EXCEEDED) return false;
        throw error;
      }
    },
    30_000,
    () => `spicedb on ${endpoint} did not come up:\n${proc.output()}`,
  );
  return {
    endpoint,
    presharedKey,
    process: proc,
    async write(lines) {
      const updates = lines.map((line) => v1.RelationshipUpdate.create({ operation: v1.RelationshipUpdate_Operation.TOUCH, relationship: relationship(line) }));
      await call((cb) => client.writeRelationships(v1.WriteRelationshipsRequest.create({ updates }), new Metadata(), { deadline: Date.now() + 10_000 }, cb));
    },
    async stop() {
      client.close();
      await proc.stop('SIGKILL');
    },
  };
}

export interface BenchSidecar {
  readonly grpcPort: number;
  readonly process: ManagedProcess;
  /** A Prometheus sample by exact name and labels; 0 when absent. */
  metric(sample: string): Promise<number>;
  /** Every sample whose name starts with one of `prefixes`, by full name with labels. */
  samples(prefixes: readonly string[]): Promise<Record<string, number>>;
  stop(): Promise<void>;
}

export async function startBenchSidecar(config: Record<string, unknown>, options: { env: NodeJS.ProcessEnv; cwd: string; nodeArgs?: readonly string[] }): Promise<BenchSidecar> {
  const dir = mkdtempSync(join(tmpdir(), 'jwtauth-bench-config-'));
  const configFile = join(dir, 'jwtauth.yaml');
  writeFileSync(configFile, stringify(config));
  const grpcPort = await freePort();
  const adminPort = await freePort();
  const admin = `http://127.0.0.1:${adminPort}`;
  const proc = startProcess(
    process.execPath,
    [...(options.nodeArgs ?? []), CLI, 'serve', '--config', configFile, '--grpc-address', `127.0.0.1:${grpcPort}`, '--admin-address', `127.0.0.1:${adminPort}`],
    { env: { ...process.env, JWTAUTH_LOG_LEVEL: 'warn', ...options.env }, cwd: options.cwd },
  );
  await waitFor(async () => (await fetch(`${admin}/readyz`)).status === 200, 60_000, () => `sidecar not ready:\n${proc.output()}`);
  return {
    grpcPort,
    process: proc,
    async metric(sample) {
      const text = await (await fetch(`${admin}/metrics`)).text();
      for (const line of text.split('\n')) {
        if (line.startsWith(sample) && line[sample.length] === ' ') return Number(line.slice(sample.length + 1));
      }
      return 0;
    },
    async samples(prefixes) {
      const text = await (await fetch(`${admin}/metrics`)).text();
      const out: Record<string, number> = {};
      for (const line of text.split('\n')) {
        if (line.startsWith('#') || !prefixes.some((p) => line.startsWith(p))) continue;
        const at = line.lastIndexOf(' ');
        out[line.slice(0, at)] = Number(line.slice(at + 1));
      }
      return out;
    },
    // SIGTERM: the sidecar drains (drainSeconds 0) and exits, so --cpu-prof gets to write its file.
    stop: () => proc.stop('SIGTERM', 15_000),
  };
}
