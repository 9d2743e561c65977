import fc from 'fast-check';
import { beforeEach, describe, expect, it } from 'vitest';
import type { RequestContext } from '../../src/core/request-context.js';
import { compileRules } from '../../src/inbound/compile-rules.js';
import { inboundSchema } from '../../src/inbound/config.js';

// Envoy forwards %2F and %5C unchanged unless path_with_escaped_slashes_action says otherwise
// (docs: envoy/envoy.yaml sets UNESCAPE_AND_REDIRECT), and many apps decode them into separators
// before they route. A {param} that took `victim%2Fadmin` as `victim/admin` would let the sidecar
// authorize one route while the app serves another.

function get(path: string): RequestContext {
  return {
    direction: 'inbound',
    requestId: '',
    authority: 'api.local',
    method: 'GET',
    path,
    query: '',
    grpc: undefined,
    headers: new Map(),
    duplicateHeaders: new Set(),
    peerPrincipal: undefined,
    contextExtensions: { direction: 'inbound' },
    body: undefined,
  };
}

function index(rules: unknown[]) {
  return compileRules(inboundSchema.parse({ rules })!.rules, { root: undefined, maxBytes: 65_536 });
}

describe('a path parameter is one segment as the app will see it', () => {
  // Built in each test: collection-time code runs unmutated under Stryker.
  let rules: ReturnType<typeof index>;
  beforeEach(() => {
    rules = index([
    { name: 'public-summary', match: { http: { path: '/v1/clouds/{cloud}/summary' } }, auth: 'none' },
    {
      name: 'admin-summary',
      match: { http: { path: '/v1/clouds/{cloud}/admin/summary' } },
      checks: [{ resource: 'cloud:{path.cloud}', permission: 'admin' }],
    },
    ]);
  });

  it('never binds an escaped slash or backslash, so a public route does not answer for the admin route the app may route to', () => {
    for (const escaped of ['%2F', '%2f', '%5C', '%5c']) {
      expect(rules.match(get(`/v1/clouds/victim${escaped}admin/summary`)), escaped).toBeUndefined();
    }
    // The same request unescaped is the admin route, with its check.
    expect(rules.match(get('/v1/clouds/victim/admin/summary'))).toMatchObject({ rule: { name: 'admin-summary' }, pathParams: { cloud: 'victim' } });
  });

  it('never binds a raw backslash either, which some apps also take as a separator', () => {
    expect(rules.match(get('/v1/clouds/victim\\admin/summary'))).toBeUndefined();
  });

  it('still decodes every other escape in a parameter', () => {
    expect(rules.match(get('/v1/clouds/my%20cloud%2E1/summary'))).toMatchObject({ rule: { name: 'public-summary' }, pathParams: { cloud: 'my cloud.1' } });
  });

  it('never hands a check a parameter value that holds a separator, whatever the segment', () => {
    // Separators and escape-looking text mixed with any code points, so each run meets them.
    const piece = fc.oneof(fc.constantFrom('/', '\\', '%', '.', ' ', '%2F'), fc.string({ unit: 'binary', minLength: 1, maxLength: 3 }));
    fc.assert(
      fc.property(fc.array(piece, { minLength: 1, maxLength: 5 }).map((pieces) => pieces.join('')), (value) => {
        const segment = encodeURIComponent(value);
        const match = rules.match(get(`/v1/clouds/${segment}/summary`));
        if (value.includes('/') || value.includes('\\')) expect(match).toBeUndefined();
        else expect(match?.pathParams).toEqual({ cloud: value });
      }),
    );
  });

  it('leaves such a segment to a ** rule on the same prefix, as it leaves any segment no {param} takes', () => {
    const withRest = index([
      { name: 'one-cloud', match: { http: { path: '/v1/clouds/{cloud}' } }, checks: [{ resource: 'cloud:{path.cloud}', permission: 'view' }] },
      { name: 'under-clouds', match: { http: { path: '/v1/clouds/**' } }, checks: [{ resource: 'platform:main', permission: 'view_all_clouds' }] },
    ]);
    expect(withRest.match(get('/v1/clouds/a%2Fb'))?.rule.name).toBe('under-clouds');
    expect(withRest.match(get('/v1/clouds/a'))).toMatchObject({ rule: { name: 'one-cloud' }, pathParams: { cloud: 'a' } });
  });

  it('leaves a request to a ** rule at the same place when the {param} branch leads to no rule', () => {
    const tree = index([
      { name: 'one-cloud-nodes', match: { http: { path: '/v1/clouds/{cloud}/nodes' } }, checks: [{ resource: 'cloud:{path.cloud}', permission: 'view' }] },
      { name: 'under-clouds', match: { http: { path: '/v1/clouds/**' } }, checks: [{ resource: 'platform:main', permission: 'view_all_clouds' }] },
    ]);
    expect(tree.match(get('/v1/clouds/a/nodes'))).toMatchObject({ rule: { name: 'one-cloud-nodes' }, pathParams: { cloud: 'a' } });
    expect(tree.match(get('/v1/clouds/a/volumes'))).toMatchObject({ rule: { name: 'under-clouds' }, pathParams: {} });
  });
});
