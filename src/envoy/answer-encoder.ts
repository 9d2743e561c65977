/**
 * Decision + decision id → the framed CheckResponse the listener writes. Envoy asks the same
 * questions over and over: a cached inbound allow for one caller sets the same identity headers
 * every time, an outbound allow the same cached service token, a denial the same reason. So the
 * bytes of each distinct answer are encoded once (check-response.ts renders it, proto-loader
 * encodes it) with a placeholder where the decision id goes, and each Check gets a copy with its
 * own id written over the placeholder.
 *
 * The memo is found by walking a tree of Maps keyed by the decision's own strings (kind, reason,
 * each header name and value, each removed name), so a hit builds no key, no response object and
 * no string: it allocates the answer's bytes and nothing else.
 */
import { DENY_REASONS } from '../core/decision.js';
import type { Decision, HeaderList } from '../core/decision.js';
import type { CheckResponse } from '../generated/envoy/service/auth/v3/CheckResponse.js';
import { DECISION_ID_LENGTH } from '../observability/tracing-ids.js';
import { renderCheckResponse } from './check-response.js';
import { frameMessage } from './grpc-wire.js';
import { envoyAuthProto } from './protos.js';

/** Stands for the decision id in the memoized bytes; hex ids are one byte per character, like it. */
const ID_PLACEHOLDER = 'q'.repeat(DECISION_ID_LENGTH);
/**
 * List lengths as keys, so a value can never be read as a name: a decision with more headers than
 * this is encoded without the memo (none of this sidecar's has more than six).
 */
const COUNT_KEYS = Array.from({ length: 16 }, (_, count) => `#${count}`);

/** A CheckResponse as the listener writes it: encoded, with its 5-byte gRPC message prefix. */
export function frameCheckResponse(response: CheckResponse): Buffer {
  return frameMessage(envoyAuthProto().envoy.service.auth.v3.Authorization.service.Check.responseSerialize(response));
}

interface Memo {
  readonly bytes: Buffer;
  /** Where the placeholder starts; -1 when the answer cannot carry one (see #encodeOnce). */
  readonly idAt: number;
}

class KeyNode {
  readonly children = new Map<string, KeyNode>();
  memo: Memo | undefined;
}

export class AnswerEncoder {
  readonly #maxEntries: number;
  #root = new KeyNode();
  /** Denials of gRPC calls, which carry their gRPC status (check-response.ts). */
  #grpcDenials = new KeyNode();
  #entries = 0;

  /**
   * Bounded: past `maxEntries` distinct answers the memo starts over, which costs one miss per live
   * answer and no LRU bookkeeping per Check (distinct answers track distinct callers, a few
   * thousand at most).
   */
  constructor(maxEntries = 4096) {
    this.#maxEntries = maxEntries;
  }

  /** Distinct answers held. */
  get size(): number {
    return this.#entries;
  }

  /** `decisionId`: 32 lower-case hex characters (tracing-ids.ts). `grpc`: the request is a gRPC call. */
  encode(decision: Decision, decisionId: string, grpc = false): Buffer {
    const node = this.#nodeFor(decision, grpc);
    if (node === undefined) return this.#encodeWithId(decision, decisionId, grpc);
    let memo = node.memo;
    if (memo === undefined) {
      memo = this.#encodeOnce(decision, grpc);
      node.memo = memo;
      this.#entries++;
    }
    if (memo.idAt < 0) return this.#encodeWithId(decision, decisionId, grpc);
    const bytes = Buffer.allocUnsafe(memo.bytes.length);
    memo.bytes.copy(bytes, 0);
    bytes.write(decisionId, memo.idAt, DECISION_ID_LENGTH, 'latin1');
    return bytes;
  }

  #encodeWithId(decision: Decision, decisionId: string, grpc: boolean): Buffer {
    return frameCheckResponse(renderCheckResponse(decision, decisionId, grpc));
  }

  #encodeOnce(decision: Decision, grpc: boolean): Memo {
    const bytes = frameCheckResponse(renderCheckResponse(decision, ID_PLACEHOLDER, grpc));
    const idAt = bytes.indexOf(ID_PLACEHOLDER, 0, 'latin1');
    // A header value equal to the placeholder would make its place ambiguous: such an answer is
    // encoded in full every time.
    const ambiguous = idAt < 0 || bytes.indexOf(ID_PLACEHOLDER, idAt + 1, 'latin1') >= 0;
    return { bytes, idAt: ambiguous ? -1 : idAt };
  }

  /** The decision's node, created on first sight; undefined when it has too many headers to key. */
  #nodeFor(decision: Decision, grpc: boolean): KeyNode | undefined {
    if (this.#entries >= this.#maxEntries) this.#forget();
    let node = this.#child(grpc && decision.kind === 'deny' ? this.#grpcDenials : this.#root, decision.kind === 'allow' ? 'allow' : decision.reason);
    if (decision.kind === 'allow') {
      const set = this.#headers(node, decision.setHeaders);
      const removed = decision.removeHeaders;
      const count = COUNT_KEYS[removed.length];
      if (set === undefined || count === undefined) return undefined;
      node = this.#child(set, count);
      for (let i = 0; i < removed.length; i++) node = this.#child(node, removed[i] as string);
      return node;
    }
    // A denial's status, body and reason header follow from its reason (DENY_REASONS); only its
    // extra headers (a challenge) vary.
    if (DENY_REASONS[decision.reason] === undefined) return undefined;
    return this.#headers(node, decision.headers);
  }

  #headers(from: KeyNode, headers: HeaderList): KeyNode | undefined {
    const count = COUNT_KEYS[headers.length];
    if (count === undefined) return undefined;
    let node = this.#child(from, count);
    for (let i = 0; i < headers.length; i++) {
      const [name, value] = headers[i] as readonly [string, string];
      node = this.#child(this.#child(node, name), value);
    }
    return node;
  }

  #child(node: KeyNode, key: string): KeyNode {
    let child = node.children.get(key);
    if (child === undefined) {
      child = new KeyNode();
      node.children.set(key, child);
    }
    return child;
  }

  #forget(): void {
    this.#root = new KeyNode();
    this.#grpcDenials = new KeyNode();
    this.#entries = 0;
  }
}
