/**
 * Where each part of a running sidecar registers its own clean-up, in the spirit of fastify's
 * onClose: whoever starts something registers how to stop it, right there, and the owner closes
 * everything once, newest first, so a listener stops before the adapters its checks use.
 */
import type { Closable } from '../core/ports.js';

export class Teardown implements Closable {
  readonly #steps: Array<{ readonly name: string; readonly close: () => Promise<void> }> = [];
  #closing: Promise<void> | undefined;

  constructor(private readonly onError: (name: string, error: unknown) => void) {}

  add(name: string, close: () => Promise<void>): void {
    if (this.#closing) throw new Error(`cannot register ${name}: already closing`);
    this.#steps.push({ name, close });
  }

  /** Runs every step once, newest first; a step that fails is reported and the rest still run. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      for (const step of this.#steps.reverse()) {
        try {
          await step.close();
        } catch (error) {
          this.onError(step.name, error);
        }
      }
    })();
    return this.#closing;
  }
}
