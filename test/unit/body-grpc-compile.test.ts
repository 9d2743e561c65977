/**
 * Load-time checks of gRPC body paths: a rule that could never read a value must fail at config
 * load, naming the rule (`where`), the request type and the path, not deny every request later.
 */
import { describe, expect, it } from 'vitest';
import { BodyConfigError, compileGrpcBodyReader, loadDescriptors } from '../../src/body/body-reader.js';
import { LEGACY_PROTO, loadFixtureRoot, REQUEST_TYPE, SERVICE } from '../fixtures/body/fixture.js';

const WHERE = 'inbound.rules[2] (create-namespace).checks[0]';
const root = loadFixtureRoot();

function compileError(paths: readonly string[], method = 'CreateNamespace', service = SERVICE, maxBytes = 4096): string {
  try {
    compileGrpcBodyReader(root, service, method, paths, WHERE, maxBytes);
  } catch (error) {
    expect(error).toBeInstanceOf(BodyConfigError);
    return (error as Error).message;
  }
  throw new Error(`expected ${paths.join(', ')} to be refused`);
}

/** The prefix every path error starts with: the rule, the path, the request type and the method. */
function pathError(path: string, problem: string): string {
  return `${WHERE}: body path "${path}" (request type ${REQUEST_TYPE} of ${SERVICE}/CreateNamespace): ${problem}`;
}

describe('gRPC body reader: service and method', () => {
  it('refuses an unknown service and suggests the closest one', () => {
    expect(compileError(['cloud_id'], 'CreateNamespace', 'fixture.vmcontroller.v1.VmControler')).toBe(
      `${WHERE}: no gRPC service "fixture.vmcontroller.v1.VmControler" in the loaded descriptors; did you mean "${SERVICE}"?`,
    );
  });

  it('needs the fully qualified name: a bare service name is not matched anywhere in the tree', () => {
    expect(compileError(['cloud_id'], 'CreateNamespace', 'VmController')).toContain('no gRPC service "VmController"');
  });

  it('accepts a leading dot on the service name', () => {
    expect(compileGrpcBodyReader(root, `.${SERVICE}`, 'CreateNamespace', ['cloud_id'], WHERE, 4096).paths).toEqual(['cloud_id']);
  });

  it('refuses an unknown method, suggesting the closest and listing the service\'s methods', () => {
    expect(compileError(['cloud_id'], 'CreateNamespaces')).toBe(
      `${WHERE}: service ${SERVICE} has no method "CreateNamespaces"; did you mean "CreateNamespace"? ` +
        '(methods: CreateNamespace, GetNamespace, WatchNamespaces, UploadNamespaces, SyncNamespaces)',
    );
  });

  it('refuses streaming methods of every kind', () => {
    for (const [method, kind] of [
      ['WatchNamespaces', 'server-streaming'],
      ['UploadNamespaces', 'client-streaming'],
      ['SyncNamespaces', 'bidirectional-streaming'],
    ] as const) {
      expect(compileError(['cloud_id'], method)).toBe(`${WHERE}: ${SERVICE}/${method} is a ${kind} method; streaming methods cannot use body templates`);
    }
  });
});

describe('gRPC body reader: paths', () => {
  it('refuses a field that does not exist, suggesting the nearest name (also for camelCase spellings)', () => {
    expect(compileError(['spec.cloud.idd'])).toBe(pathError('spec.cloud.idd', 'message fixture.vmcontroller.v1.CloudRef has no field "idd"; did you mean "id"?'));
    expect(compileError(['cloudId'])).toBe(pathError('cloudId', `message ${REQUEST_TYPE} has no field "cloudId"; did you mean "cloud_id"?`));
    expect(compileError(['zzzzzz'])).toBe(pathError('zzzzzz', `message ${REQUEST_TYPE} has no field "zzzzzz"`));
  });

  it('refuses a path that ends in a message, and names the fields it could continue with', () => {
    expect(compileError(['spec'])).toBe(
      pathError('spec', 'field "spec" is a message (fixture.vmcontroller.v1.NamespaceSpec); name one of its fields (cloud, display_name, phase, protected)'),
    );
    expect(compileError(['spec.cloud'])).toContain('field "spec.cloud" is a message (fixture.vmcontroller.v1.CloudRef)');
  });

  it('refuses bytes, repeated and map fields, at the end of a path or on the way', () => {
    expect(compileError(['token'])).toBe(pathError('token', 'field "token" is bytes; bytes cannot be rendered into a check'));
    expect(compileError(['labels'])).toBe(pathError('labels', 'field "labels" is repeated; a body path needs a single value'));
    expect(compileError(['sizes'])).toBe(pathError('sizes', 'field "sizes" is repeated; a body path needs a single value'));
    expect(compileError(['annotations'])).toBe(pathError('annotations', 'field "annotations" is a map; a body path needs a single value'));
    expect(compileError(['annotations.owner'])).toBe(pathError('annotations.owner', 'field "annotations" is a map; a body path needs a single value'));
    expect(compileError(['extra_specs.display_name'])).toBe(
      pathError('extra_specs.display_name', 'field "extra_specs" is repeated; a body path needs a single value'),
    );
  });

  it('refuses a path that continues past a scalar', () => {
    expect(compileError(['cloud_id.x'])).toBe(pathError('cloud_id.x', 'field "cloud_id" is a string, not a message, so "cloud_id.x" cannot go inside it'));
  });

  it('refuses empty segments', () => {
    for (const path of ['', 'spec..id', '.cloud_id', 'cloud_id.']) {
      expect(compileError([path])).toBe(pathError(path, 'has an empty segment'));
    }
  });

  it('names the failing path when one of several is wrong', () => {
    expect(compileError(['cloud_id', 'spec.cloud.id', 'spec.nope'])).toContain('body path "spec.nope"');
  });

  it('refuses paths into groups (proto2)', () => {
    const legacy = loadDescriptors({ protoFiles: [LEGACY_PROTO] });
    expect(() => compileGrpcBodyReader(legacy, 'fixture.legacy.Legacy', 'Put', ['extra.label'], WHERE, 4096)).toThrow(
      'field "extra" is a group; body paths do not walk into groups',
    );
  });

  it('needs at least one path and a positive size limit; duplicate paths are read once', () => {
    expect(compileError([])).toBe(`${WHERE}: a body reader needs at least one body path`);
    expect(compileError(['cloud_id'], 'CreateNamespace', SERVICE, 0)).toBe(`${WHERE}: the body size limit must be a positive whole number of bytes, not 0`);
    expect(compileError(['cloud_id'], 'CreateNamespace', SERVICE, 1.5)).toContain('not 1.5');
    const reader = compileGrpcBodyReader(root, SERVICE, 'CreateNamespace', ['cloud_id', 'tier', 'cloud_id'], WHERE, 4096);
    expect(reader.paths).toEqual(['cloud_id', 'tier']);
  });

  it('accepts every scalar kind a check can use', () => {
    const paths = [
      'cloud_id', 'tier', 'quota_bytes', 'request_seq', 'offset', 'fingerprint', 'delta', 'dry_run', 'priority',
      'replicas', 'shard', 'weight', 'ratio', 'user_id', 'team_id', 'meta.team', 'deadline.seconds', 'deadline.nanos',
      'note', 'spec.phase', 'spec.protected', 'spec.display_name', 'spec.cloud.region',
    ];
    expect(compileGrpcBodyReader(root, SERVICE, 'CreateNamespace', paths, WHERE, 4096).paths).toEqual(paths);
  });
});
