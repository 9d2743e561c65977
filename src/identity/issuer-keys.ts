/**
 * The verification keys of one issuer. We fetch and parse the JWKS ourselves rather than use
 * jose's createRemoteJWKSet, because that one drops its keys after cacheMaxAge when a refetch
 * fails; here the last good key set stays in use through an issuer outage.
 *
 * Each key is imported once and bound to exactly one algorithm (its `alg`, or the single
 * allow-listed algorithm its type supports), so one key can never verify under two algorithms.
 * Keys come only from the configured source: `jku`, `x5u`, `jwk` and `x5c` headers are ignored.
 *
 * A JWKS URL is fetched with global fetch, which trusts only the system roots; an issuer behind a
 * private CA (`jwks.caFile`) is fetched over node:https instead, whose agent can hold that CA.
 * With `jwks.discovery` every refresh first reads the discovery document (./discovery.ts) and then
 * the JWKS it names, so a moved jwks_uri is followed; a failure of either keeps the last good keys.
 */
import { readFile } from 'node:fs/promises';
import type { Agent } from 'node:https';
import { importJWK } from 'jose';
import type { CryptoKey, JWK } from 'jose';
import { failure, success } from '../core/result.js';
import type { Result } from '../core/result.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { Algorithm, IssuerConfig, JwksSource } from './config.js';
import { resolveConfigPath } from '../base/paths.js';
import { describeNetworkFailure } from '../base/network-error.js';
import { createClientTlsAgent } from '../base/tls-client-agent.js';
import { discoverJwksUri, discoveryUrlOf } from './discovery.js';
import { issuerRequest } from './issuer-http.js';
import type { IssuerAnswer } from './issuer-http.js';

export interface BoundKey {
  readonly kid: string | undefined;
  readonly alg: Algorithm;
  readonly key: CryptoKey;
  /** The JWK as published, with its bound alg: a refresh that still publishes it keeps this object. */
  readonly published: string;
}

export type KeyLookup = Result<BoundKey, 'keys_unavailable' | 'unknown_key' | 'disallowed_algorithm'>;

export interface IssuerKeysDeps {
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly baseDir: string;
  readonly fetchTimeoutMs: number;
  readonly now: () => number;
}

const MAX_JWKS_BYTES = 1 << 20;
const JWKS_MEDIA_TYPES = 'application/jwk-set+json, application/json';

/** Failures without any keys that are logged at debug before they become a warning (about 0.75 s of retries). */
const QUIET_FIRST_FAILURES = 3;

function compatible(alg: Algorithm, jwk: JWK): boolean {
  switch (jwk.kty) {
    case 'RSA':
      return alg.startsWith('RS') || alg.startsWith('PS');
    case 'EC':
      return (alg === 'ES256' && jwk.crv === 'P-256') || (alg === 'ES384' && jwk.crv === 'P-384') || (alg === 'ES512' && jwk.crv === 'P-521');
    case 'OKP':
      return jwk.crv === 'Ed25519' && (alg === 'EdDSA' || alg === 'Ed25519');
    default:
      return false;
  }
}

interface KeySet {
  readonly byKid: ReadonlyMap<string, BoundKey>;
  readonly all: readonly BoundKey[];
}

const EMPTY: KeySet = { byKid: new Map(), all: [] };

export class IssuerKeys {
  private keys: KeySet = EMPTY;
  private lastFetchAt = Number.NEGATIVE_INFINITY;
  private inflight: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly source: string;
  /** Holds `jwks.caFile`, read once here; undefined means global fetch with the system roots. */
  private readonly privateCaAgent: Agent | undefined;

  constructor(
    private readonly issuer: IssuerConfig,
    private readonly jwks: JwksSource,
    private readonly deps: IssuerKeysDeps,
  ) {
    this.source = 'url' in jwks ? jwks.url : 'discovery' in jwks ? discoveryUrlOf(issuer.issuer, jwks.discovery) : this.filePath(jwks.file);
    if (!('file' in jwks) && jwks.caFile !== undefined) {
      try {
        // No keep-alive: fetches are minutes apart, and an idle socket held that long is only a liability.
        this.privateCaAgent = createClientTlsAgent({ caFile: jwks.caFile }, { baseDir: deps.baseDir, keepAlive: false });
      } catch (error) {
        throw new Error(`issuer ${issuer.name}: jwks.caFile: ${(error as Error).message}`, { cause: error });
      }
    }
  }

  /** Loads the first key set. A file that cannot be loaded is a config error; a URL that is down is not. */
  async start(): Promise<void> {
    const error = await this.refresh();
    if (error !== undefined && 'file' in this.jwks) throw new Error(`issuer ${this.issuer.name}: ${error}`);
    this.schedule(error === undefined);
  }

  hasKeys(): boolean {
    return this.keys.all.length > 0;
  }

  /**
   * Starts from the keys `previous` (this issuer, as a verifier being replaced knew it) holds, so a
   * rebuild (a rotated file elsewhere in the verifier) while this issuer's JWKS is unreachable keeps
   * the last good keys instead of refusing its tokens. A successful fetch replaces them as usual.
   */
  carryOver(previous: IssuerKeys): void {
    if (this.keys.all.length === 0) this.keys = previous.keys;
  }

  /**
   * Whether `key` is still in the current key set. Tokens verified earlier are trusted only while
   * their key is: removing a key from the JWKS revokes them at the next refresh, not at their exp.
   */
  stillHas(key: BoundKey): boolean {
    return key.kid !== undefined ? this.keys.byKid.get(key.kid) === key : this.keys.all.includes(key);
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.privateCaAgent?.destroy();
  }

  /** Synchronous when the key is known; a Promise only when an unknown kid triggers a refetch. */
  lookup(kid: string | undefined, alg: Algorithm): KeyLookup | Promise<KeyLookup> {
    const found = this.find(kid, alg);
    if (found.ok || found.reason === 'disallowed_algorithm' || !this.mayRefetch()) return found;
    return this.refreshOnce().then(() => this.find(kid, alg));
  }

  private find(kid: string | undefined, alg: Algorithm): KeyLookup {
    const { byKid, all } = this.keys;
    if (all.length === 0) return failure('keys_unavailable', `no keys loaded for issuer ${this.issuer.name}`);
    if (kid !== undefined) {
      const key = byKid.get(kid);
      if (!key) return failure('unknown_key', `kid ${JSON.stringify(kid.slice(0, 64))} not in JWKS`);
      if (key.alg !== alg) return failure('disallowed_algorithm', `key ${kid} is bound to ${key.alg}, token says ${alg}`);
      return success(key);
    }
    let match: BoundKey | undefined;
    for (const key of all) {
      if (key.alg !== alg) continue;
      // Without a kid, trying several keys would let one token cost N verifications; insist on one.
      if (match) return failure('unknown_key', 'token has no kid and several keys match its alg');
      match = key;
    }
    return match ? success(match) : failure('unknown_key', `no ${alg} key without kid`);
  }

  private mayRefetch(): boolean {
    if ('file' in this.jwks) return false;
    return this.inflight !== undefined || this.deps.now() - this.lastFetchAt >= this.jwks.cooldownSeconds * 1000;
  }

  private refreshOnce(): Promise<void> {
    this.inflight ??= this.refresh().then(() => {
      this.inflight = undefined;
    });
    return this.inflight;
  }

  /** Failed loads since the last success; counted in refresh(). */
  private failuresInARow = 0;

  private schedule(lastSucceeded: boolean): void {
    if (this.closed) return;
    const jwks = this.jwks;
    const base = jwks.refreshSeconds * 1000;
    const cooldown = ('file' in jwks ? 5 : jwks.cooldownSeconds) * 1000;
    let delay: number;
    if (lastSucceeded) delay = base * (0.9 + Math.random() * 0.2);
    // With no keys at all every token from this issuer is refused, so retry fast (from 250 ms,
    // doubling) until the first key set arrives: an issuer that starts a moment after us, or our
    // own JWKS endpoint racing our own start-up, must not leave us unready for a whole cool-down.
    else if (!this.hasKeys()) delay = Math.min(cooldown, base, 250 * 2 ** (this.failuresInARow - 1));
    // With last good keys in hand, retry sooner than a normal refresh but no faster than the cool-down.
    else delay = Math.min(base, cooldown);
    this.timer = setTimeout(() => {
      void this.refreshOnce().then(() => this.schedule(this.failuresInARow === 0));
    }, delay);
    this.timer.unref();
  }

  /** Fetches and installs a key set; returns the error text on failure (the old keys stay). */
  private async refresh(): Promise<string | undefined> {
    const { metrics, logger } = this.deps;
    this.lastFetchAt = this.deps.now();
    let error: string | undefined;
    try {
      const document = await this.load();
      const next = await this.parse(document);
      if (next.all.length === 0) throw new Error('JWKS has no usable keys');
      this.keys = next;
    } catch (cause) {
      error = cause instanceof Error ? cause.message : String(cause);
    }
    metrics.jwksRefreshes.inc({ issuer: this.issuer.name, result: error === undefined ? 'success' : 'failure' });
    metrics.jwksKeys.set({ issuer: this.issuer.name }, this.keys.all.length);
    const where = { issuer: this.issuer.name, source: this.source };
    if (error === undefined) {
      if (this.failuresInARow > 0) logger.info({ ...where, keys: this.keys.all.length, afterFailures: this.failuresInARow }, 'JWKS loaded');
      else logger.debug({ ...where, keys: this.keys.all.length }, 'JWKS loaded');
      this.failuresInARow = 0;
      return undefined;
    }
    this.failuresInARow++;
    if (this.hasKeys()) {
      logger.warn({ ...where, error, keptKeys: this.keys.all.length }, 'JWKS refresh failed; keeping last good keys');
    } else if (this.failuresInARow < QUIET_FIRST_FAILURES) {
      // An issuer starting a moment after us, or our own JWKS endpoint (embedded defaults) racing
      // our own listener: the fast retries in schedule() usually win, so this is not yet news.
      logger.debug({ ...where, error }, 'JWKS not loaded yet; retrying');
    } else {
      logger.warn({ ...where, error, failures: this.failuresInARow }, 'JWKS fetch failed and there are no keys yet: tokens from this issuer are refused (keys_unavailable) until a fetch succeeds');
    }
    return error;
  }

  private filePath(file: string): string {
    return resolveConfigPath(this.deps.baseDir, file);
  }

  private async load(): Promise<unknown> {
    const jwks = this.jwks;
    let text: string;
    if ('file' in jwks) text = await readFile(this.source, 'utf8');
    else if ('url' in jwks) text = await this.download(jwks.url);
    else {
      const fetching = { agent: this.privateCaAgent, timeoutMs: this.deps.fetchTimeoutMs };
      text = await this.download(await discoverJwksUri(this.source, this.issuer.issuer, fetching));
    }
    if (text.length > MAX_JWKS_BYTES) throw new Error('JWKS larger than 1 MiB');
    try {
      return JSON.parse(text) as unknown;
    } catch (error) {
      throw new Error(`the JWKS is not JSON: ${(error as Error).message.slice(0, 120)}`, { cause: error });
    }
  }

  private async download(url: string): Promise<string> {
    let answer: IssuerAnswer;
    try {
      answer = await issuerRequest(url, {
        method: 'GET',
        headers: { accept: JWKS_MEDIA_TYPES },
        agent: this.privateCaAgent,
        timeoutMs: this.deps.fetchTimeoutMs,
        maxBytes: MAX_JWKS_BYTES,
      });
    } catch (error) {
      throw new Error(`cannot fetch the JWKS: ${describeNetworkFailure(error).text}`, { cause: error });
    }
    if (answer.status < 200 || answer.status > 299) throw new Error(`the JWKS endpoint answered HTTP ${answer.status}`);
    if (answer.text === undefined) throw new Error('JWKS larger than 1 MiB');
    return answer.text;
  }

  private async parse(document: unknown): Promise<KeySet> {
    const keys = (document as { keys?: unknown } | null)?.keys;
    if (!Array.isArray(keys)) throw new Error('JWKS has no "keys" array');
    const byKid = new Map<string, BoundKey>();
    const all: BoundKey[] = [];
    const allowed = this.issuer.algorithms;
    const previous = new Map(this.keys.all.map((bound) => [bound.published, bound]));
    for (const entry of keys as unknown[]) {
      if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) continue;
      const jwk = entry as JWK;
      const kid = typeof jwk.kid === 'string' ? jwk.kid : undefined;
      const skip = (why: string): void => this.deps.logger.warn({ issuer: this.issuer.name, kid, why }, 'JWKS key skipped');
      if (jwk.d !== undefined || jwk.kty === 'oct') {
        skip('private or symmetric key');
        continue;
      }
      if (jwk.use !== undefined && jwk.use !== 'sig') continue;
      if (Array.isArray(jwk.key_ops) && !jwk.key_ops.includes('verify')) continue;
      let alg: Algorithm | undefined;
      if (typeof jwk.alg === 'string') {
        alg = allowed.find((a) => a === jwk.alg && compatible(a, jwk));
        if (!alg) {
          skip(`alg ${jwk.alg} not allowed or not valid for the key type`);
          continue;
        }
      } else {
        const candidates = allowed.filter((a) => compatible(a, jwk));
        if (candidates.length !== 1) {
          skip(candidates.length === 0 ? 'no allowed algorithm fits the key' : `key has no alg and fits ${candidates.join(', ')}`);
          continue;
        }
        alg = candidates[0];
      }
      if (alg === undefined) continue;
      if (kid !== undefined && byKid.has(kid)) {
        skip('duplicate kid');
        continue;
      }
      const published = JSON.stringify({ ...jwk, alg });
      let bound = previous.get(published);
      if (bound === undefined) {
        try {
          const imported = await importJWK({ ...jwk, alg }, alg);
          if (imported instanceof Uint8Array) continue;
          bound = { kid, alg, key: imported, published };
        } catch {
          skip('key does not import');
          continue;
        }
      }
      all.push(bound);
      if (kid !== undefined) byKid.set(kid, bound);
    }
    return { byKid, all };
  }
}
