/**
 * Loading the descriptors gRPC body paths resolve against: from .proto files (with include paths
 * and imports) and from a binary FileDescriptorSet. protoc and buf are not installed here, so the
 * FileDescriptorSet is generated at test time from the same .proto with protobufjs's
 * ext/descriptor (see writeFixtureDescriptorSet).
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BodyConfigError, compileGrpcBodyReader, loadDescriptors } from '../../src/body/body-reader.js';
import type { DescriptorSource } from '../../src/body/body-reader.js';
import {
  BROKEN,
  body,
  encode,
  frame,
  INCLUDE,
  loadFixtureRoot,
  PROTOS,
  REQUEST_TYPE,
  SERVICE,
  VMCONTROLLER_PROTO,
  writeFixtureDescriptorSet,
} from '../fixtures/body/fixture.js';

const PATHS = ['cloud_id', 'spec.cloud.id', 'spec.phase', 'tier', 'meta.team', 'deadline.seconds', 'quota_bytes', 'priority'];

const REQUEST = {
  cloud_id: 'cl0',
  spec: { cloud: { id: 'cloud-7' }, phase: 'PHASE_DELETING' },
  tier: 'TIER_FREE',
  meta: { team: 'payments' },
  deadline: { seconds: 1_700_000_000 },
  quota_bytes: '-42',
  priority: 0,
};

const EXPECTED = {
  cloud_id: 'cl0',
  'spec.cloud.id': 'cloud-7',
  'spec.phase': 'PHASE_DELETING',
  tier: 'TIER_FREE',
  'meta.team': 'payments',
  'deadline.seconds': '1700000000',
  quota_bytes: '-42',
  priority: '0',
};

function configError(source: DescriptorSource): string {
  try {
    loadDescriptors(source);
  } catch (error) {
    expect(error).toBeInstanceOf(BodyConfigError);
    return (error as Error).message;
  }
  throw new Error('expected loadDescriptors to fail');
}

function tempFile(name: string, content: string | Uint8Array): string {
  const path = join(mkdtempSync(join(tmpdir(), 'body-descriptors-')), name);
  writeFileSync(path, content);
  return path;
}

describe('loadDescriptors from .proto files', () => {
  it('follows imports through the include paths, including a bundled well-known type, and keeps field names as written', () => {
    const root = loadFixtureRoot();
    const reader = compileGrpcBodyReader(root, SERVICE, 'CreateNamespace', PATHS, 'w', 4096);
    const read = reader.read(body(frame(encode(root, REQUEST_TYPE, REQUEST))));
    expect(read).toEqual({ ok: true, value: new Map(Object.entries(EXPECTED)) });
  });

  it('without include paths searches only the listed files\' directories, so a package-rooted import fails and names both files', () => {
    const message = configError({ protoFiles: [VMCONTROLLER_PROTO] });
    expect(message).toContain(VMCONTROLLER_PROTO);
    expect(message).toContain('import "fixture/common/v1/common.proto" was not found in the include paths');
  });

  it('reports a syntax error as file:line', () => {
    const file = join(BROKEN, 'syntax-error.proto');
    expect(configError({ protoFiles: [file], includePaths: [BROKEN] })).toBe(`${file}:7: illegal token 'string', ';' expected`);
  });

  it('reports an import that no include path holds', () => {
    const file = join(BROKEN, 'missing-import.proto');
    const message = configError({ protoFiles: [file], includePaths: [BROKEN, INCLUDE] });
    expect(message).toBe(`${file}: import "fixture/does/not/exist.proto" was not found in the include paths (${BROKEN}, ${INCLUDE})`);
  });

  it('reports a type that is referenced but defined nowhere', () => {
    expect(configError({ protoFiles: [join(BROKEN, 'unknown-type.proto')] })).toContain("no such Type or Enum 'NoSuchType'");
  });

  it('refuses missing files, missing include directories and relative paths', () => {
    expect(configError({ protoFiles: [join(PROTOS, 'nope.proto')] })).toBe(`proto file does not exist: ${join(PROTOS, 'nope.proto')}`);
    expect(configError({ protoFiles: [VMCONTROLLER_PROTO], includePaths: [join(PROTOS, 'no-such-dir')] })).toBe(
      `include path does not exist: ${join(PROTOS, 'no-such-dir')}`,
    );
    expect(configError({ protoFiles: ['protos/x.proto'] })).toBe('protoFiles entry must be an absolute path: protos/x.proto');
    expect(configError({ protoFiles: [VMCONTROLLER_PROTO], includePaths: ['include'] })).toBe('includePaths entry must be an absolute path: include');
  });
});

describe('loadDescriptors from a FileDescriptorSet', () => {
  it('reads the same values as the .proto it was generated from', () => {
    const fromSet = loadDescriptors({ descriptorSet: writeFixtureDescriptorSet() });
    const reader = compileGrpcBodyReader(fromSet, SERVICE, 'CreateNamespace', PATHS, 'w', 4096);
    const bytes = encode(loadFixtureRoot(), REQUEST_TYPE, REQUEST);
    expect(reader.read(body(frame(bytes)))).toEqual({ ok: true, value: new Map(Object.entries(EXPECTED)) });
  });

  it('still refuses map and streaming shapes (a descriptor set spells maps as repeated entry messages)', () => {
    const fromSet = loadDescriptors({ descriptorSet: writeFixtureDescriptorSet() });
    expect(() => compileGrpcBodyReader(fromSet, SERVICE, 'CreateNamespace', ['annotations'], 'w', 4096)).toThrow(/"annotations" is repeated/);
    expect(() => compileGrpcBodyReader(fromSet, SERVICE, 'WatchNamespaces', ['cloud_id'], 'w', 4096)).toThrow(/server-streaming/);
  });

  it('refuses a file that is missing, empty, or not a descriptor set', () => {
    const missing = join(tmpdir(), 'no-such-descriptor-set.binpb');
    expect(configError({ descriptorSet: missing })).toBe(`cannot read descriptor set ${missing}: ENOENT`);
    const empty = tempFile('empty.binpb', '');
    expect(configError({ descriptorSet: empty })).toBe(`${empty} is not a binary FileDescriptorSet: it describes no files`);
    const text = tempFile('vmcontroller.proto', 'syntax = "proto3";\npackage x;\nmessage M { string a = 1; }\n');
    expect(configError({ descriptorSet: text })).toMatch(/^\/.*vmcontroller\.proto is not a binary FileDescriptorSet: invalid wire type/);
  });
});

describe('loadDescriptors source shape', () => {
  it('needs exactly one of protoFiles and descriptorSet, and include paths only with protoFiles', () => {
    expect(configError({})).toBe('give exactly one of protoFiles or descriptorSet');
    expect(configError({ protoFiles: [VMCONTROLLER_PROTO], descriptorSet: '/x.binpb' })).toBe('give exactly one of protoFiles or descriptorSet');
    expect(configError({ protoFiles: [] })).toBe('protoFiles is empty');
    expect(configError({ descriptorSet: '/x.binpb', includePaths: [INCLUDE] })).toContain('includePaths apply to protoFiles only');
  });
});
