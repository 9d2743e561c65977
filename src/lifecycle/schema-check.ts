/**
 * Whether the running rules fit the SpiceDB schema they will meet. For the embedded SpiceDB that
 * is settled by preflight (the schema is a local file, and a mismatch is a load error). For a
 * SpiceDB server the schema lives there: it is read at start-up and on reload, and a server that
 * cannot be reached then is asked again, with backoff, until the first answer. Start-up never
 * waits for it; a mismatch makes the sidecar not ready (a rollout with a wrong rule stops at the
 * first pod, while the old pods keep serving), and a reload that a reachable server contradicts
 * is refused like any other bad configuration.
 */
import type { LoadedConfig } from '../config/load.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { checkConfigAgainstSchema } from './schema-conformance.js';
import { readServerSchema } from '../spicedb/server-schema.js';
import { parseSchemaModel } from '../spicedb/schema-model.js';

export type SchemaConformance =
  | { readonly state: 'conforms'; readonly origin: string }
  | { readonly state: 'mismatch'; readonly origin: string; readonly problems: readonly string[] }
  | { readonly state: 'unchecked'; readonly why: string };

const STATES = ['conforms', 'mismatch', 'unchecked'] as const;
/** One ReadSchema call; the retries cover a server that is slow to come up. */
const READ_TIMEOUT_MS = 2_000;
const RETRY_FIRST_MS = 1_000;
const RETRY_MAX_MS = 30_000;

/** Reads the server's schema once and checks `loaded` against it. */
export async function checkAgainstServerSchema(loaded: LoadedConfig): Promise<SchemaConformance> {
  const read = await readServerSchema(loaded.config.spicedb, loaded.baseDir, READ_TIMEOUT_MS);
  if (!read.ok) return { state: 'unchecked', why: read.problem };
  const parsed = parseSchemaModel(read.schemaText, read.origin);
  if (!parsed.ok) return { state: 'mismatch', origin: read.origin, problems: [parsed.problem] };
  const problems = checkConfigAgainstSchema(loaded.config, parsed.model, read.origin);
  return problems.length === 0 ? { state: 'conforms', origin: read.origin } : { state: 'mismatch', origin: read.origin, problems };
}

/**
 * The conformance of one configuration, kept current until closed: `known` when it is settled
 * already (the embedded schema, checked by preflight; a server read during a reload), else read
 * from the server now and retried until it answers.
 */
export class SchemaCheck {
  #status: SchemaConformance = { state: 'unchecked', why: 'not read yet' };
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  readonly #loaded: LoadedConfig;
  readonly #logger: Logger;
  readonly #metrics: Metrics;

  constructor(loaded: LoadedConfig, deps: { readonly logger: Logger; readonly metrics: Metrics }, known?: SchemaConformance) {
    this.#loaded = loaded;
    this.#logger = deps.logger;
    this.#metrics = deps.metrics;
    if (known !== undefined && known.state !== 'unchecked') this.#settle(known);
    else this.#attempt(RETRY_FIRST_MS);
  }

  get status(): SchemaConformance {
    return this.#status;
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
  }

  #attempt(nextDelayMs: number): void {
    this.#publish();
    void checkAgainstServerSchema(this.#loaded).then((status) => {
      if (this.#closed) return;
      if (status.state !== 'unchecked') {
        this.#settle(status);
        return;
      }
      this.#status = status;
      this.#logger.warn({ why: status.why, retryInMs: nextDelayMs }, 'cannot read the SpiceDB schema to check the rules against; will retry');
      this.#timer = setTimeout(() => this.#attempt(Math.min(nextDelayMs * 2, RETRY_MAX_MS)), nextDelayMs);
      this.#timer.unref();
    });
  }

  #settle(status: Exclude<SchemaConformance, { state: 'unchecked' }>): void {
    this.#status = status;
    this.#publish();
    if (status.state === 'conforms') this.#logger.info({ schema: status.origin }, 'rules checked against the SpiceDB schema');
    else this.#logger.error({ schema: status.origin, problems: status.problems }, 'rules name what the SpiceDB schema does not have: NOT READY until the configuration or the schema is fixed');
  }

  #publish(): void {
    for (const state of STATES) this.#metrics.schemaConformance.set({ state }, state === this.#status.state ? 1 : 0);
  }
}
