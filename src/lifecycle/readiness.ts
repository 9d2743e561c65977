/**
 * Readiness of one sidecar: keys loaded, permission backend reachable, rules fitting the schema,
 * not draining. It is polled (the adapters learn of outages on their own schedule) and every
 * change is applied once: gRPC health, the `jwtauth_ready` gauge, a log line, and the status a
 * worker reports to its primary.
 */
import type { PublicKeyDocuments } from '../core/ports.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { SchemaConformance } from './schema-check.js';
import type { ServingState } from './serving-state.js';

export interface ReadinessDetail {
  readonly keys: boolean;
  /**
   * Issuers that have no usable key yet, by name (one not `required` leaves `keys` true); absent
   * when every issuer has keys. A single sidecar's /readyz only: worker mode reports `keys`.
   */
  readonly issuersWithoutKeys?: readonly string[];
  readonly permissions: boolean;
  readonly schema: SchemaConformance['state'];
  readonly draining: boolean;
}

/** What a worker reports to the primary that serves the admin listener for it (workers/). */
export interface SidecarStatus {
  readonly ready: boolean;
  readonly detail: ReadinessDetail;
  /** The configuration serving now. */
  readonly hash: string;
  /** What the admin listener publishes when this sidecar mints tokens. */
  readonly publicKeys: { readonly jwks: { keys: object[] }; readonly openidConfiguration: object } | undefined;
}

export interface ReadinessEffects {
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** Called with the status at start and whenever it changes (readiness, its detail, a reload). */
  readonly onStatus?: ((status: SidecarStatus) => void) | undefined;
}

/** Something whose health follows readiness: each gRPC listener. */
interface ServingSwitch {
  setServing(serving: boolean): void;
}

const POLL_MS = 250;

export class Readiness {
  #draining = false;
  #lastReady: boolean | undefined;
  #lastStatus = '';
  #switches: readonly ServingSwitch[] = [];
  #timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly state: ServingState,
    private readonly effects: ReadinessEffects,
  ) {}

  /** As /readyz answers it. */
  now(): { ready: boolean; detail: ReadinessDetail } {
    const { verifier, checker } = this.state.current.adapters;
    const missing = verifier.issuersWithoutKeys().map((issuer) => issuer.name);
    const detail = {
      keys: verifier.ready(),
      ...(missing.length > 0 ? { issuersWithoutKeys: missing } : {}),
      permissions: checker.ready(),
      schema: this.state.schema,
      draining: this.#draining,
    };
    return { ready: detail.keys && detail.permissions && detail.schema !== 'mismatch' && !this.#draining, detail };
  }

  /** Applies readiness to `switches` now and on every change until stopped. */
  follow(switches: readonly ServingSwitch[]): () => Promise<void> {
    this.#switches = switches;
    this.update();
    this.#timer = setInterval(() => this.update(), POLL_MS);
    this.#timer.unref();
    return () => Promise.resolve(clearInterval(this.#timer));
  }

  /** NOT_SERVING from now on; Checks are still answered until the listeners close. */
  startDraining(): void {
    this.#draining = true;
    this.update();
  }

  update(): void {
    const { ready, detail } = this.now();
    this.#report(ready, detail);
    if (ready === this.#lastReady) return;
    this.#lastReady = ready;
    for (const listener of this.#switches) listener.setServing(ready);
    this.effects.metrics.ready.set(ready ? 1 : 0);
    this.effects.logger.info({ ready, ...detail }, ready ? 'ready: health SERVING' : 'not ready: health NOT_SERVING');
  }

  #report(ready: boolean, detail: ReadinessDetail): void {
    const { onStatus } = this.effects;
    if (!onStatus) return;
    const { hash } = this.state.loaded;
    const key = `${ready} ${detail.keys} ${detail.permissions} ${detail.schema} ${detail.draining} ${hash}`;
    if (key === this.#lastStatus) return;
    this.#lastStatus = key;
    const keys: PublicKeyDocuments | undefined = this.state.current.adapters.tokens?.publicKeys;
    onStatus({ ready, detail, hash, publicKeys: keys && { jwks: keys.jwks(), openidConfiguration: keys.openidConfiguration() } });
  }
}
