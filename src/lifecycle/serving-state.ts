/**
 * What a running sidecar serves right now: the current generation (configuration, adapters,
 * pipeline) and whether its rules fit the SpiceDB schema. A reload swaps both in one tick.
 */
import type { LoadedConfig } from '../config/load.js';
import type { Closable } from '../core/ports.js';
import type { AdapterDeps } from './adapters.js';
import { Generations } from './generations.js';
import type { Generation } from './generations.js';
import type { Fingerprint } from './named-files.js';
import { SchemaCheck } from './schema-check.js';
import type { SchemaConformance } from './schema-check.js';

export class ServingState implements Closable {
  readonly generations: Generations;
  #schemaCheck: SchemaCheck;

  constructor(
    first: Generation,
    known: SchemaConformance | undefined,
    private readonly deps: AdapterDeps,
  ) {
    this.generations = new Generations(first, (error) => deps.logger.error({ err: error }, 'error while closing a replaced adapter'));
    this.#schemaCheck = new SchemaCheck(first.loaded, deps, known);
    deps.metrics.setConfigHash(first.loaded.hash);
    deps.metrics.setCertificateExpiries(first.files.files);
  }

  get current(): Generation {
    return this.generations.current;
  }

  get loaded(): LoadedConfig {
    return this.generations.current.loaded;
  }

  get files(): Fingerprint {
    return this.generations.current.files;
  }

  get schema(): SchemaConformance['state'] {
    return this.#schemaCheck.status.state;
  }

  /** New Checks run on `next` from now on; those running finish on the old generation. */
  swap(next: Generation, known: SchemaConformance): void {
    this.generations.replace(next);
    this.#schemaCheck.close();
    this.#schemaCheck = new SchemaCheck(next.loaded, this.deps, known);
    this.deps.metrics.setConfigHash(next.loaded.hash);
    this.deps.metrics.setCertificateExpiries(next.files.files);
  }

  async close(): Promise<void> {
    this.#schemaCheck.close();
    await this.generations.close();
  }
}
