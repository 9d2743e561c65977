/**
 * Reload: re-read the configuration from where it came from and, if it or a file it names changed
 * (named-files.ts: a certificate renewed at the same path), swap it in, one reload at a time (a
 * file save and a SIGHUP for the same edit must not race each other). Only the adapters whose
 * section or files changed are rebuilt (adapters.ts).
 *
 * A new configuration is refused, and the old one keeps serving, when it fails to load, removes
 * a serving section without allowing it (reload-guard.ts), fails preflight, is contradicted by a
 * SpiceDB server that answers, or fails to build. Every refusal is logged with its problems and
 * counted; the log names the files that changed, never their content. A refusal changes nothing,
 * so the next change to the configuration or to any file it names tries again (a new key's file
 * that arrives after the configuration naming it). Checks already running finish on the
 * configuration they started with.
 */
import { ConfigError } from '../config/load.js';
import type { LoadedConfig } from '../config/load.js';
import { EMBEDDED_ORIGIN, resolveConfig } from '../config/resolve.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { AdapterDeps } from './adapters.js';
import type { Generation } from './generations.js';
import { changedFiles, fingerprintOf } from './named-files.js';
import type { Fingerprint } from './named-files.js';
import { preflight } from './preflight.js';
import type { PreflightResult } from './preflight.js';
import { sectionRemovalProblems } from './reload-guard.js';
import { discardAdapters, openGeneration } from './runtime.js';
import { checkAgainstServerSchema } from './schema-check.js';
import type { SchemaConformance } from './schema-check.js';

/** What is serving, as a reload sees it; `G` is the generation (a Generation outside unit tests). */
export interface ReloadTarget<G> {
  readonly loaded: LoadedConfig;
  /** What `loaded` and the files it names held when the serving adapters were built. */
  readonly files: Fingerprint;
  readonly current: G;
  swap(next: G, known: SchemaConformance): void;
}

/** The steps that touch files, SpiceDB and adapters. */
export interface ReloadSteps<G> {
  /** The configuration as it is now where it came from; throws ConfigError when it does not load. */
  read(origin: string): LoadedConfig;
  /** Reads the files `next` names (named-files.ts). */
  fingerprint(next: LoadedConfig): Fingerprint;
  /** Preflight, then the schema: its conformance, or a ConfigError with every problem. */
  vet(next: LoadedConfig): Promise<SchemaConformance>;
  /** Builds `next`'s generation from the files as `fingerprint` read them, reusing what `current` shares. */
  open(next: LoadedConfig, current: G, files: Fingerprint): Promise<G>;
  /** Closes what `open` built that `current` does not share: a generation that never served. */
  discard(built: G, current: G): Promise<void>;
}

export interface ReloadEffects {
  readonly metrics: Pick<Metrics, 'configReloads'>;
  readonly logger: Logger;
  /** After a swap. */
  readonly swapped: () => void;
}

/** The conformance preflight settled (the embedded SpiceDB's schema file), if it did. */
export function settledConformance(checked: PreflightResult): SchemaConformance | undefined {
  return checked.schemaOrigin === undefined ? undefined : { state: 'conforms', origin: checked.schemaOrigin };
}

export class Reloader<G> {
  #queue: Promise<void> = Promise.resolve();
  #stopped = false;

  constructor(
    private readonly target: ReloadTarget<G>,
    private readonly steps: ReloadSteps<G>,
    private readonly effects: ReloadEffects,
  ) {}

  /** Resolves once this reload (and every one queued before it) has been applied or refused. */
  reload(why: string): Promise<void> {
    if (this.target.loaded.origin === EMBEDDED_ORIGIN) return Promise.resolve();
    this.#queue = this.#queue.then(() => this.#reloadOnce(why));
    return this.#queue;
  }

  /** No reload applies from now on (draining or closed): one queued must not open adapters nobody will close. */
  stop(): void {
    this.#stopped = true;
  }

  async #reloadOnce(why: string): Promise<void> {
    if (this.#stopped) return;
    const { target, steps } = this;
    let next: LoadedConfig;
    let known: SchemaConformance;
    let built: G;
    let files: Fingerprint | undefined;
    try {
      next = steps.read(target.loaded.origin);
      files = steps.fingerprint(next);
      if (files.id === target.files.id) return;
      const removed = sectionRemovalProblems(target.loaded.config, next.config);
      if (removed.length > 0) throw new ConfigError(next.origin, removed);
      known = await steps.vet(next);
      built = await steps.open(next, target.current, files);
    } catch (error) {
      this.effects.metrics.configReloads.inc({ result: 'failure' });
      const problems = error instanceof ConfigError ? error.problems : [error instanceof Error ? error.message : String(error)];
      const changed = files === undefined ? [] : changedFiles(target.files, files);
      this.effects.logger.error({ why, problems, ...(changed.length > 0 ? { changedFiles: changed } : {}) }, 'reload rejected; still serving the previous configuration');
      return;
    }
    if (this.#stopped) {
      await steps.discard(built, target.current);
      return;
    }
    const changed = changedFiles(target.files, files);
    // One tick: a Check acquires the generation once, so it sees old or new, never a mix.
    target.swap(built, known);
    this.effects.metrics.configReloads.inc({ result: 'success' });
    this.effects.logger.info({ why, config: next.origin, hash: next.hash, ...(changed.length > 0 ? { changedFiles: changed } : {}) }, 'configuration reloaded');
    this.effects.swapped();
  }
}

/** The steps as a running sidecar takes them. */
export function liveReloadSteps(deps: AdapterDeps & { readonly env: NodeJS.ProcessEnv }): ReloadSteps<Generation> {
  return {
    read: (origin) => resolveConfig(origin, deps.env),
    fingerprint: fingerprintOf,
    async vet(next) {
      // A server that answers and contradicts the rules refuses the reload; one that does not
      // answer leaves the check to the retries of the new generation's SchemaCheck.
      const known = settledConformance(await preflight(next, { env: deps.env })) ?? (await checkAgainstServerSchema(next));
      if (known.state === 'mismatch') throw new ConfigError(next.origin, known.problems);
      return known;
    },
    open: (next, current, files) => openGeneration(next, deps, current.adapters, files),
    discard: (built, current) => discardAdapters(built.adapters, current.adapters),
  };
}
