import { deny } from './decision.js';
import type { Decision } from './decision.js';
import type { Awaitable } from './awaitable.js';
import type { Authorizer } from './ports.js';
import type { RequestContext } from './request-context.js';

/** Sends each request to the authorizer for its direction; a direction with none configured denies. */
export class DirectionRouter implements Authorizer {
  readonly strippedHeaders: readonly string[];

  constructor(
    private readonly inbound: Authorizer | undefined,
    private readonly outbound: Authorizer | undefined,
  ) {
    this.strippedHeaders = Object.freeze([...new Set([...(inbound?.strippedHeaders ?? []), ...(outbound?.strippedHeaders ?? [])])]);
  }

  decide(request: RequestContext): Awaitable<Decision> {
    const target = request.direction === 'inbound' ? this.inbound : this.outbound;
    if (!target) return deny('unknown_direction', { detail: `no ${request.direction} configuration` });
    return target.decide(request);
  }
}
