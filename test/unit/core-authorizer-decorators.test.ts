/**
 * The decorators around the authorizers: dry-run (a deny becomes an allow that remembers it, but
 * forged identity headers are still stripped) and the direction router (each direction to its own
 * authorizer, none configured is a deny).
 */
import { describe, expect, it } from 'vitest';
import { allow, deny } from '../../src/core/decision.js';
import type { Decision } from '../../src/core/decision.js';
import { DirectionRouter } from '../../src/core/direction-router.js';
import { DryRunAuthorizer } from '../../src/core/dry-run.js';
import type { Authorizer } from '../../src/core/ports.js';
import type { RequestContext } from '../../src/core/request-context.js';

class Fixed implements Authorizer {
  readonly seen: RequestContext[] = [];
  constructor(
    private readonly decision: Decision,
    readonly strippedHeaders: readonly string[] = ['x-user-id'],
  ) {}
  decide(request: RequestContext): Promise<Decision> {
    this.seen.push(request);
    return Promise.resolve(this.decision);
  }
}

function request(direction: 'inbound' | 'outbound'): RequestContext {
  return {
    direction,
    requestId: 'r1',
    authority: 'api.local',
    method: 'GET',
    path: '/v1/x',
    query: '',
    grpc: undefined,
    headers: new Map(),
    duplicateHeaders: new Set(),
    peerPrincipal: undefined,
    contextExtensions: { direction },
    body: undefined,
  };
}

const denied = deny('permission_denied', { rule: 'r', subject: 'alice' });
const ruleInDryRun = deny('permission_denied', { rule: 'r', subject: 'alice', dryRun: true });
const allowed = allow('allowed', { rule: 'r', subject: 'alice' }, [['x-user-id', 'alice']], ['x-user-id']);

describe('dry-run', () => {
  it('globally: turns a deny into an allow that remembers the reason, sets no header and still strips the identity headers', async () => {
    const dry = new DryRunAuthorizer(new Fixed(denied, ['x-user-id', 'x-jwtauth-on-behalf-of']), true);
    expect(dry.strippedHeaders).toEqual(['x-user-id', 'x-jwtauth-on-behalf-of']);
    const decision = await dry.decide(request('inbound'));
    expect(decision).toEqual(allow('dry_run', { rule: 'r', subject: 'alice', dryRun: true, wouldDeny: 'permission_denied' }, [], ['x-user-id', 'x-jwtauth-on-behalf-of']));
    expect(decision).toMatchObject({ kind: 'allow', reason: 'dry_run', setHeaders: [], removeHeaders: ['x-user-id', 'x-jwtauth-on-behalf-of'] });
  });

  it('per rule: only the deny of a rule in dry-run becomes an allow', async () => {
    expect(await new DryRunAuthorizer(new Fixed(ruleInDryRun), false).decide(request('inbound'))).toMatchObject({
      kind: 'allow',
      reason: 'dry_run',
      facts: { dryRun: true, wouldDeny: 'permission_denied' },
    });
    expect(await new DryRunAuthorizer(new Fixed(denied), false).decide(request('inbound'))).toBe(denied);
  });

  it('passes an allow through unchanged, headers and all', async () => {
    expect(await new DryRunAuthorizer(new Fixed(allowed), true).decide(request('inbound'))).toBe(allowed);
    expect(await new DryRunAuthorizer(new Fixed(allowed), false).decide(request('inbound'))).toBe(allowed);
  });
});

describe('direction router', () => {
  it('sends each request to the authorizer of its direction', async () => {
    const inbound = new Fixed(allowed, ['x-user-id']);
    const outbound = new Fixed(denied, ['x-jwtauth-on-behalf-of']);
    const router = new DirectionRouter(inbound, outbound);
    expect(await router.decide(request('inbound'))).toBe(allowed);
    expect(await router.decide(request('outbound'))).toBe(denied);
    expect(inbound.seen.map((r) => r.direction)).toEqual(['inbound']);
    expect(outbound.seen.map((r) => r.direction)).toEqual(['outbound']);
  });

  it('denies a direction with no configuration', async () => {
    expect(await new DirectionRouter(undefined, new Fixed(allowed)).decide(request('inbound'))).toMatchObject({
      kind: 'deny',
      reason: 'unknown_direction',
      facts: { detail: 'no inbound configuration' },
    });
    expect(await new DirectionRouter(new Fixed(allowed), undefined).decide(request('outbound'))).toMatchObject({
      kind: 'deny',
      reason: 'unknown_direction',
      facts: { detail: 'no outbound configuration' },
    });
  });

  it('strips the headers either direction strips, each once', () => {
    expect(new DirectionRouter(new Fixed(allowed, ['x-user-id', 'x-a']), new Fixed(denied, ['x-a', 'x-b'])).strippedHeaders).toEqual(['x-user-id', 'x-a', 'x-b']);
    expect(new DirectionRouter(undefined, new Fixed(denied, ['x-b'])).strippedHeaders).toEqual(['x-b']);
    expect(new DirectionRouter(new Fixed(denied, ['x-a']), undefined).strippedHeaders).toEqual(['x-a']);
    expect(new DirectionRouter(undefined, undefined).strippedHeaders).toEqual([]);
  });
});
