/**
 * A throwaway PostgreSQL cluster for SpiceDB's postgres datastore (tests, the bench): `initdb` into
 * a temporary directory, one server on a free port of 127.0.0.1 that trusts loopback connections
 * and accepts no others (no Unix socket either), removed by stop() or when this process exits.
 *
 * Durability is off (fsync, synchronous_commit, full_page_writes): the cluster dies with the test
 * or bench that made it, so a crash loses nothing anyone keeps, while on a shared 2-core machine
 * flushing to disk would make every SpiceDB write (schema, seeding, its revision heartbeat every
 * 5 s) wait for the disk. Reads, which the bench measures, do not flush either way.
 *
 * The server refuses to run as root. As root (CI containers) it runs as the `postgres` system user
 * that Debian's package creates (scripts/install-tools.sh), otherwise as the current user.
 */
import { execFile, execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './ports.js';
import { atExit, GiveUp, startProcess, TOOLS_BIN, waitFor } from './processes.js';
import type { ManagedProcess } from './processes.js';
import type { SpicedbDatastore } from './spicedb.js';

const INITDB_LINK = join(TOOLS_BIN, 'initdb');
const POSTGRES_LINK = join(TOOLS_BIN, 'postgres');
/** Not linked by install-tools: Debian's postgresql package ships it beside the server (postgresql-client). */
const PSQL_NAME = 'psql';

/**
 * The binary a .tools/bin link points at. As root, initdb and the server run as the postgres user,
 * who may not traverse the checkout (a clone under a 0700 temporary directory, as CI makes): exec
 * the packaged binary itself, never the link inside the checkout.
 */
function packagedBinary(link: string): string {
  return realpathSync(link);
}
const SUPERUSER = 'postgres';

export interface PostgresOptions {
  /** The server's name in output and failure messages. */
  readonly name?: string;
  /** taskset CPU list for the server and every process it forks (one per connection). Default: not pinned. */
  readonly cpus?: string;
  readonly startTimeoutMs?: number;
  /**
   * Server settings (`-c name=value`) added to or replacing the defaults below: the Watch bench
   * turns track_commit_timestamp off to record what SpiceDB answers without it, and loads
   * pg_stat_statements to count SpiceDB's queries.
   */
  readonly settings?: Readonly<Record<string, string>>;
}

export interface PostgresCluster {
  /** The superuser on the `postgres` database; no password (trust), no TLS (loopback). */
  readonly uri: string;
  readonly port: number;
  /** The postmaster's pid: every backend and background process of the cluster is its child. */
  readonly pid: number;
  /** Runs SQL as the superuser with the package's psql (unaligned, tuples only); resolves to its output. */
  query(sql: string): Promise<string>;
  stop(): Promise<void>;
}

interface Account {
  readonly uid: number;
  readonly gid: number;
}

/** Who runs initdb and the server: the postgres system user when we are root, else nobody in particular (us). */
function serverAccount(): Account | undefined {
  if (process.getuid?.() !== 0) return undefined;
  try {
    const id = (flag: string): number => Number(execFileSync('id', [flag, SUPERUSER], { encoding: 'utf8' }).trim());
    return { uid: id('-u'), gid: id('-g') };
  } catch {
    throw new Error(`PostgreSQL refuses to run as root and there is no ${SUPERUSER} user to run it as: run bash scripts/install-tools.sh postgres`);
  }
}

/**
 * Removes the small System V segment a server keeps to detect a second server on its data
 * directory. A server that shuts down removes it; one killed with SIGKILL leaves it until reboot.
 * Its ID is on line 7 of postmaster.pid.
 */
function releaseSharedMemory(dataDir: string): void {
  const shmemId = readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[6]?.trim().split(/\s+/)[1];
  if (shmemId !== undefined) execFileSync('ipcrm', ['-m', shmemId], { stdio: 'ignore' });
}

export async function startPostgres(options: PostgresOptions = {}): Promise<PostgresCluster> {
  for (const bin of [INITDB_LINK, POSTGRES_LINK]) {
    if (!existsSync(bin)) throw new Error(`${bin} is missing: run bash scripts/install-tools.sh postgres`);
  }
  const name = options.name ?? 'postgres';
  const account = serverAccount();
  const dir = mkdtempSync(join(tmpdir(), 'jwtauth-postgres-'));
  const dataDir = join(dir, 'data');
  const removeDir = (): void => rmSync(dir, { recursive: true, force: true });
  // The exit handler kills the server (processes.ts) with SIGKILL; its files must go too, and the
  // shared memory the kill leaves behind.
  const forgetDir = atExit(() => {
    try {
      releaseSharedMemory(dataDir);
    } finally {
      removeDir();
    }
  });
  // Only what initdb and the server need: PG* variables of the caller's shell would redirect them.
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C' };
  // The cluster's own directory as cwd: the caller's may not be open to the postgres user.
  const runAs = account ? { ...account, cwd: dir } : {};
  const initdb = packagedBinary(INITDB_LINK);
  const postgres = packagedBinary(POSTGRES_LINK);
  let server: ManagedProcess | undefined;
  const stop = async (): Promise<void> => {
    // Immediate shutdown: nothing in the cluster is kept, so there is nothing to checkpoint.
    await server?.stop('SIGQUIT', 5000);
    removeDir();
    forgetDir();
  };

  try {
    if (account) chownSync(dir, account.uid, account.gid);
    await promisify(execFile)(initdb, ['-D', dataDir, '-U', SUPERUSER, '--auth=trust', '--encoding=UTF8', '--locale=C', '--no-sync'], { env, ...runAs }).catch(
      (error: Error & { stderr?: string }) => {
        throw new Error(`${name}: initdb failed: ${error.stderr || error.message}`, { cause: error });
      },
    );
    // Replaces initdb's file, which also trusts the Unix socket and replication connections.
    const hbaFile = join(dataDir, 'pg_hba.conf');
    writeFileSync(hbaFile, 'host all all 127.0.0.1/32 trust\n', { mode: 0o600 });
    if (account) chownSync(hbaFile, account.uid, account.gid);

    const port = await freePort();
    const settings = {
      listen_addresses: '127.0.0.1',
      unix_socket_directories: '',
      fsync: 'off',
      synchronous_commit: 'off',
      full_page_writes: 'off',
      // SpiceDB's Watch needs it: its poll orders new transactions by pg_xact_commit_timestamp().
      // v1.56.2 runs SHOW track_commit_timestamp once at start (internal/datastore/postgres/
      // postgres.go); off, the datastore reports Watch unsupported and serve leaves WatchService
      // unregistered (pkg/cmd/server/server.go), so every Watch call fails UNIMPLEMENTED "unknown
      // service authzed.api.v1.WatchService" (bench/watch-fleet.ts, part refusal).
      track_commit_timestamp: 'on',
      lc_messages: 'C',
      ...options.settings,
    };
    const serverArgs = ['-D', dataDir, '-p', String(port), ...Object.entries(settings).flatMap(([key, value]) => ['-c', `${key}=${value}`])];
    // taskset execs the server, so the pid stays the postmaster's, and every process it forks inherits the CPU list.
    const [command, args] = options.cpus === undefined ? [postgres, serverArgs] : ['taskset', ['-c', options.cpus, postgres, ...serverArgs]];
    const current = startProcess(command, args, { name, env, ...runAs });
    server = current;
    await waitFor(
      () => {
        if (current.child.exitCode !== null) throw new GiveUp(`${name} exited with ${current.child.exitCode}`);
        return current.output().includes('database system is ready to accept connections');
      },
      options.startTimeoutMs ?? 30_000,
      () => `${name} on 127.0.0.1:${port} did not come up:\n${current.output()}`,
    );
    const uri = `postgres://${SUPERUSER}@127.0.0.1:${port}/postgres?sslmode=disable`;
    const psql = join(dirname(postgres), PSQL_NAME);
    const query = async (sql: string): Promise<string> => {
      const { stdout } = await promisify(execFile)(psql, ['--no-psqlrc', '--tuples-only', '--no-align', '--set=ON_ERROR_STOP=1', '--command', sql, uri], { env }).catch(
        (error: Error & { stderr?: string }) => {
          throw new Error(`${name}: psql failed: ${error.stderr || error.message}`, { cause: error });
        },
      );
      return stdout.trim();
    };
    return { uri, port, pid: current.child.pid as number, query, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** A datastore for one SpiceDB, and how to remove it once that SpiceDB has stopped. */
export interface ThrowawayDatastore {
  readonly datastore: SpicedbDatastore;
  stop(): Promise<void>;
}

/**
 * What SpiceDB keeps its data in for a test parameterised over datastores: memory, or a cluster
 * of its own. One SpiceDB per cluster: two would share their relationships.
 */
export async function throwawayDatastore(engine: SpicedbDatastore['engine']): Promise<ThrowawayDatastore> {
  switch (engine) {
    case 'memory':
      return { datastore: { engine }, stop: () => Promise.resolve() };
    case 'postgres': {
      const cluster = await startPostgres();
      return { datastore: { engine, uri: cluster.uri }, stop: () => cluster.stop() };
    }
  }
}
