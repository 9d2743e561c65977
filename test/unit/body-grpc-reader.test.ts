/**
 * Reading field values out of unary gRPC request bodies, as Envoy's ext_authz hands them over
 * (raw_body with the 5-byte frame prefix). Messages are built with protobufjs's own encoder or,
 * where a test needs bytes no encoder would write, with its Writer or by hand.
 */
import protobuf from 'protobufjs';
import { deflateRawSync, deflateSync, gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { compileGrpcBodyReader, loadDescriptors } from '../../src/body/body-reader.js';
import type { BodyReader, RequestBody } from '../../src/body/body-reader.js';
import { body, detail, encode, frame, LEGACY_PROTO, loadFixtureRoot, reason, REQUEST_TYPE, SERVICE, values } from '../fixtures/body/fixture.js';

const root = loadFixtureRoot();
const Request = root.lookupType(REQUEST_TYPE);

function reader(paths: readonly string[], maxBytes = 64 * 1024): BodyReader {
  return compileGrpcBodyReader(root, SERVICE, 'CreateNamespace', paths, 'w', maxBytes);
}

function message(value: Record<string, unknown>): Uint8Array {
  return encode(root, REQUEST_TYPE, value);
}

function writer(): protobuf.Writer {
  return protobuf.Writer.create();
}

/** protobufjs's 64-bit value for a decimal, built from its bits. */
function long(decimal: string, unsigned: boolean): protobuf.Long {
  const bits = BigInt.asUintN(64, BigInt(decimal));
  return new protobuf.util.Long(Number(bits & 0xffffffffn) | 0, Number(bits >> 32n) | 0, unsigned);
}

function tag(field: number, wireType: number): number {
  return (field << 3) | wireType;
}

const CLOUD = reader(['cloud_id']);

describe('gRPC body: values', () => {
  it('renders strings, nested fields, enums by name (local and imported), bool, 32-bit ints and floats', () => {
    const read = reader([
      'cloud_id', 'spec.cloud.id', 'spec.cloud.region', 'spec.display_name', 'spec.phase', 'spec.protected', 'tier',
      'dry_run', 'replicas', 'shard', 'weight', 'ratio', 'priority', 'note', 'meta.team',
    ]).read(
      body(
        frame(
          message({
            cloud_id: 'cloud-teleport-aleksander.rykalin',
            spec: { cloud: { id: 'cl0', region: 'eu-central-1' }, display_name: 'Prod ñ 🎉', phase: 'PHASE_ACTIVE', protected: false },
            tier: 'TIER_PRO',
            dry_run: true,
            replicas: -5,
            shard: 4294967295,
            weight: 0.5,
            ratio: 0.25,
            priority: 0,
            note: 'n',
            meta: { team: 'payments' },
          }),
        ),
      ),
    );
    expect(read).toEqual(
      values({
        cloud_id: 'cloud-teleport-aleksander.rykalin',
        'spec.cloud.id': 'cl0',
        'spec.cloud.region': 'eu-central-1',
        'spec.display_name': 'Prod ñ 🎉',
        'spec.phase': 'PHASE_ACTIVE',
        'spec.protected': 'false',
        tier: 'TIER_PRO',
        dry_run: 'true',
        replicas: '-5',
        shard: '4294967295',
        weight: '0.5',
        ratio: '0.25',
        priority: '0',
        note: 'n',
        'meta.team': 'payments',
      }),
    );
  });

  it('renders every 64-bit kind as its exact decimal, signed or unsigned as declared', () => {
    const cases: readonly [string, string, boolean][] = [
      ['quota_bytes', '9223372036854775807', false],
      ['quota_bytes', '-9223372036854775808', false],
      ['quota_bytes', '-1', false],
      ['quota_bytes', '9007199254740993', false], // 2^53 + 1: not representable as a double
      ['request_seq', '18446744073709551615', true],
      ['request_seq', '9223372036854775808', true],
      ['offset', '-9223372036854775808', false],
      ['offset', '9223372036854775807', false],
      ['fingerprint', '18446744073709551615', true],
      ['delta', '-1', false],
      ['delta', '-9223372036854775808', false],
    ];
    for (const [path, decimal, unsigned] of cases) {
      expect(reader([path]).read(body(frame(message({ [path]: long(decimal, unsigned) })))), `${path} = ${decimal}`).toEqual(values({ [path]: decimal }));
    }
  });

  it('treats a plain proto3 scalar holding its default as absent, even when the sender wrote it on the wire', () => {
    const defaults: Record<string, unknown> = { replicas: 0, tier: 0, dry_run: false, quota_bytes: 0, weight: 0, shard: 0, cloud_id: '' };
    for (const [path, value] of Object.entries(defaults)) {
      const bytes = message({ [path]: value });
      expect(bytes.length, `protobufjs writes ${path} = ${String(value)}`).toBeGreaterThan(0);
      expect(reason(reader([path]).read(body(frame(bytes)))), path).toBe('body_field_missing');
    }
  });

  it('reads defaults of fields with explicit presence (proto3 optional) as values, except empty strings', () => {
    expect(reader(['priority']).read(body(frame(message({ priority: 0 }))))).toEqual(values({ priority: '0' }));
    expect(reader(['spec.protected']).read(body(frame(message({ spec: { protected: false } }))))).toEqual(values({ 'spec.protected': 'false' }));
    expect(reason(reader(['note']).read(body(frame(message({ note: '' })))))).toBe('body_field_missing');
    expect(reason(reader(['priority']).read(body(frame(message({ cloud_id: 'x' })))))).toBe('body_field_missing');
  });

  it('proto2: a declared default is not a value; a value equal to the default that was sent is', () => {
    const legacy = loadDescriptors({ protoFiles: [LEGACY_PROTO] });
    const put = (paths: string[]) => compileGrpcBodyReader(legacy, 'fixture.legacy.Legacy', 'Put', paths, 'w', 4096);
    const Put = legacy.lookupType('fixture.legacy.PutRequest');
    const empty = frame(new Uint8Array());
    expect(reason(put(['bucket']).read(body(empty)))).toBe('body_field_missing');
    expect(reason(put(['copies']).read(body(empty)))).toBe('body_field_missing');
    const sent = frame(Put.encode(Put.fromObject({ copies: 0, force: false, kind: 'KIND_FILE', bucket: 'b1' })).finish());
    expect(put(['bucket', 'copies', 'force', 'kind']).read(body(sent))).toEqual(values({ bucket: 'b1', copies: '0', force: 'false', kind: 'KIND_FILE' }));
  });

  it('refuses a missing field, naming the path and the missing step', () => {
    const specPath = reader(['spec.cloud.id']);
    expect(CLOUD.read(body(frame(message({ namespace_id: 'ns' }))))).toEqual({
      ok: false,
      reason: 'body_field_missing',
      detail: 'body field "cloud_id" is not set',
    });
    expect(specPath.read(body(frame(message({ cloud_id: 'c' }))))).toEqual({
      ok: false,
      reason: 'body_field_missing',
      detail: 'body field "spec.cloud.id" is absent ("spec" is not set)',
    });
    expect(detail(specPath.read(body(frame(message({ spec: { display_name: 'd' } })))))).toBe('body field "spec.cloud.id" is absent ("spec.cloud" is not set)');
    expect(specPath.read(body(frame(message({ spec: { cloud: { id: '', region: 'r' } } }))))).toEqual({
      ok: false,
      reason: 'body_field_missing',
      detail: 'body field "spec.cloud.id" is empty',
    });
  });

  it('refuses an enum number the descriptors do not name instead of rendering the number', () => {
    const bytes = writer().uint32(tag(4, 0)).uint32(7).finish();
    const read = reader(['tier']).read(body(frame(bytes)));
    expect(reason(read)).toBe('body_field_missing');
    expect(detail(read)).toContain('enum number the descriptors do not name');
  });

  it('ignores unknown fields of every wire type', () => {
    const bytes = Buffer.concat([
      message({ cloud_id: 'cl0', spec: { cloud: { id: 'c1' } } }),
      writer().uint32(tag(99, 2)).string('unknown').uint32(tag(100, 0)).uint64(long('18446744073709551615', true)).finish(),
      writer().uint32(tag(101, 5)).fixed32(7).uint32(tag(102, 1)).fixed64(9).finish(),
      writer().uint32(tag(103, 3)).uint32(tag(1, 2)).string('inside a group').uint32(tag(103, 4)).finish(),
    ]);
    expect(reader(['cloud_id', 'spec.cloud.id']).read(body(frame(bytes)))).toEqual(values({ cloud_id: 'cl0', 'spec.cloud.id': 'c1' }));
  });

  it('takes the last of repeated scalar occurrences, like every conformant parser', () => {
    const bytes = writer().uint32(tag(1, 2)).string('first').uint32(tag(1, 2)).string('last').finish();
    expect(CLOUD.read(body(frame(bytes)))).toEqual(values({ cloud_id: 'last' }));
  });

  it('merges a message field that arrives more than once, as protobuf specifies: the service sees the merge', () => {
    // spec { cloud { id: "victim" } } then spec { display_name: "name" }: one spec with both.
    const first = writer().uint32(tag(3, 2)).fork().uint32(tag(1, 2)).fork().uint32(tag(1, 2)).string('victim').ldelim().ldelim().finish();
    const second = writer().uint32(tag(3, 2)).fork().uint32(tag(2, 2)).string('name').ldelim().finish();
    const both = reader(['spec.cloud.id', 'spec.display_name']);
    expect(both.read(body(frame(Buffer.concat([first, second]))))).toEqual(values({ 'spec.cloud.id': 'victim', 'spec.display_name': 'name' }));
    // Later occurrences win for a scalar, at any depth: spec.cloud split again inside the second spec.
    const third = writer().uint32(tag(3, 2)).fork().uint32(tag(1, 2)).fork().uint32(tag(1, 2)).string('mine').ldelim().ldelim().finish();
    expect(reader(['spec.cloud.id']).read(body(frame(Buffer.concat([first, second, third]))))).toEqual(values({ 'spec.cloud.id': 'mine' }));
    // The same merge as protobufjs's own encoder gives for the merged object, and as concatenated encodings mean.
    const merged = message({ spec: { cloud: { id: 'victim', region: 'eu' }, display_name: 'name' } });
    const split = Buffer.concat([message({ spec: { cloud: { id: 'victim' } } }), message({ spec: { cloud: { region: 'eu' } } }), message({ spec: { display_name: 'name' } })]);
    const paths = reader(['spec.cloud.id', 'spec.cloud.region', 'spec.display_name']);
    expect(paths.read(body(frame(split)))).toEqual(paths.read(body(frame(merged))));
  });

  it('reads a oneof member, and refuses when two members of the oneof arrived', () => {
    const owner = reader(['user_id']);
    expect(owner.read(body(frame(message({ user_id: 'alice' }))))).toEqual(values({ user_id: 'alice' }));
    expect(reason(owner.read(body(frame(message({ team_id: 'team-a' })))))).toBe('body_field_missing');
    // A conformant parser keeps the last member (team_id) and clears user_id; protobufjs keeps both.
    const both = writer().uint32(tag(19, 2)).string('alice').uint32(tag(20, 2)).string('team-a').finish();
    const read = owner.read(body(frame(both)));
    expect(reason(read)).toBe('body_malformed');
    expect(detail(read)).toContain('oneof owner holds several members (user_id, team_id)');
  });

  it('never puts a field value in a refusal detail', () => {
    const secret = 'sk-live-9f8e7d6c5b4a';
    const cases: [BodyReader, Uint8Array][] = [
      [reader(['user_id']), writer().uint32(tag(19, 2)).string(secret).uint32(tag(20, 2)).string(secret).finish()],
      [reader(['cloud_id', 'spec.cloud.id']), message({ cloud_id: secret, namespace_id: secret })],
      [reader(['tier']), Buffer.concat([message({ cloud_id: secret }), writer().uint32(tag(4, 0)).uint32(9).finish()])],
      [CLOUD, Buffer.concat([writer().uint32(tag(1, 2)).string(secret).finish(), Buffer.from([0x0a, 0x02, 0xc3, 0x28])])],
    ];
    for (const [one, bytes] of cases) {
      const read = one.read(body(frame(bytes)));
      expect(read.ok).toBe(false);
      expect(detail(read)).not.toContain(secret);
    }
  });
});

describe('gRPC body: framing, size and encoding', () => {
  const ok = message({ cloud_id: 'cl0' });

  it('refuses a missing or empty body', () => {
    expect(reason(CLOUD.read(undefined))).toBe('body_missing');
    expect(reason(CLOUD.read(body(new Uint8Array())))).toBe('body_missing');
  });

  it('refuses a body that did not all arrive: a cut prefix, a frame longer than the bytes, Envoy\'s partial flag, a short content-length', () => {
    expect(reason(CLOUD.read(body(frame(ok).subarray(0, 3))))).toBe('body_truncated');
    expect(CLOUD.read(body(frame(ok).subarray(0, 8)))).toEqual({
      ok: false,
      reason: 'body_truncated',
      detail: `the gRPC frame declares ${ok.length} bytes but 3 arrived`,
    });
    expect(reason(CLOUD.read(body(frame(ok), { truncated: true })))).toBe('body_truncated');
    expect(reason(CLOUD.read(body(frame(ok), { contentLength: frame(ok).length + 1 })))).toBe('body_truncated');
    expect(CLOUD.read(body(frame(ok), { contentLength: frame(ok).length }))).toEqual(values({ cloud_id: 'cl0' }));
  });

  it('refuses a second message, even an empty one, and stray bytes after the message', () => {
    expect(reason(CLOUD.read(body(Buffer.concat([frame(ok), frame(message({ cloud_id: 'other' }))]))))).toBe('body_multiple_messages');
    expect(reason(CLOUD.read(body(Buffer.concat([frame(ok), frame(new Uint8Array())]))))).toBe('body_multiple_messages');
    expect(reason(CLOUD.read(body(Buffer.concat([frame(ok), Buffer.from([0, 0])]))))).toBe('body_malformed');
  });

  it('refuses frame flags other than 0 and 1', () => {
    expect(CLOUD.read(body(frame(ok, 2)))).toEqual({ ok: false, reason: 'body_malformed', detail: 'gRPC frame flag is 2, not 0 (plain) or 1 (compressed)' });
    expect(reason(CLOUD.read(body(frame(ok, 0x80))))).toBe('body_malformed');
  });

  it('refuses a plain message over maxBytes and accepts one exactly at it', () => {
    expect(reason(reader(['cloud_id'], ok.length - 1).read(body(frame(ok))))).toBe('body_too_large');
    expect(reader(['cloud_id'], ok.length).read(body(frame(ok)))).toEqual(values({ cloud_id: 'cl0' }));
  });

  it('inflates gzip and deflate (zlib) frames', () => {
    expect(CLOUD.read(body(frame(gzipSync(ok), 1), { grpcEncoding: 'gzip' }))).toEqual(values({ cloud_id: 'cl0' }));
    expect(CLOUD.read(body(frame(deflateSync(ok), 1), { grpcEncoding: 'deflate' }))).toEqual(values({ cloud_id: 'cl0' }));
  });

  it('reads a plain frame whatever grpc-encoding says', () => {
    expect(CLOUD.read(body(frame(ok), { grpcEncoding: 'gzip' }))).toEqual(values({ cloud_id: 'cl0' }));
  });

  it('refuses raw deflate (gRPC\'s deflate is the zlib format) and corrupt compressed data', () => {
    expect(reason(CLOUD.read(body(frame(deflateRawSync(ok), 1), { grpcEncoding: 'deflate' })))).toBe('body_malformed');
    const corrupt = Buffer.from(gzipSync(ok));
    corrupt[corrupt.length - 5] = (corrupt[corrupt.length - 5] ?? 0) ^ 0xff;
    expect(reason(CLOUD.read(body(frame(corrupt, 1), { grpcEncoding: 'gzip' })))).toBe('body_malformed');
  });

  it('refuses every compressed frame it cannot inflate the same way: no grpc-encoding, identity, or one other than gzip and deflate', () => {
    // One reason (415 body_unsupported_encoding) for all of them, as docs/inbound.md lists it.
    expect(reason(CLOUD.read(body(frame(gzipSync(ok), 1))))).toBe('body_unsupported_encoding');
    expect(detail(CLOUD.read(body(frame(gzipSync(ok), 1))))).toBe('the gRPC frame is marked compressed but grpc-encoding is absent');
    expect(reason(CLOUD.read(body(frame(gzipSync(ok), 1), { grpcEncoding: 'identity' })))).toBe('body_unsupported_encoding');
    for (const encoding of ['snappy', 'zstd', 'br', 'x-custom']) {
      expect(reason(CLOUD.read(body(frame(gzipSync(ok), 1), { grpcEncoding: encoding }))), encoding).toBe('body_unsupported_encoding');
    }
  });

  it('bounds inflation by maxBytes: exactly the limit is read, one byte over is refused', () => {
    const big = message({ cloud_id: 'c'.repeat(1000) });
    expect(reason(reader(['cloud_id'], big.length).read(body(frame(gzipSync(big), 1), { grpcEncoding: 'gzip' })))).toBe('ok');
    expect(reason(reader(['cloud_id'], big.length - 1).read(body(frame(gzipSync(big), 1), { grpcEncoding: 'gzip' })))).toBe('body_too_large');
    expect(reason(reader(['cloud_id'], big.length - 1).read(body(frame(deflateSync(big), 1), { grpcEncoding: 'deflate' })))).toBe('body_too_large');
  });

  it('stops a zip bomb at maxBytes instead of inflating it', () => {
    // 16 concatenated gzip members of 64 MiB of zeros: 1 GiB once inflated, about 1 MiB on the wire.
    const member = gzipSync(Buffer.alloc(64 * 1024 * 1024), { level: 9 });
    const bomb = Buffer.concat(Array.from({ length: 16 }, () => member));
    const started = performance.now();
    const read = reader(['cloud_id'], 1024 * 1024).read(body(frame(bomb, 1), { grpcEncoding: 'gzip' }));
    expect(read).toEqual({ ok: false, reason: 'body_too_large', detail: 'the gzip-compressed message inflates to more than 1048576 bytes' });
    expect(performance.now() - started).toBeLessThan(1000);
  });

  it('checks the content-type when the adapter passes it: gRPC with protobuf only', () => {
    const framed = frame(ok);
    const withType = (contentType: string): RequestBody => body(framed, { contentType });
    expect(CLOUD.read(withType('application/grpc'))).toEqual(values({ cloud_id: 'cl0' }));
    expect(CLOUD.read(withType('application/grpc+proto'))).toEqual(values({ cloud_id: 'cl0' }));
    expect(CLOUD.read(withType('Application/GRPC; charset=utf-8'))).toEqual(values({ cloud_id: 'cl0' }));
    for (const contentType of ['application/grpc+json', 'application/grpc-web', 'application/grpc-web-text', 'application/json']) {
      expect(reason(CLOUD.read(withType(contentType))), contentType).toBe('body_malformed');
    }
    expect(detail(CLOUD.read(withType('application/grpc+json')))).toBe(
      'content-type "application/grpc+json" is not gRPC with protobuf messages (application/grpc)',
    );
  });
});

describe('gRPC body: wire shapes protobufjs accepts but conformant parsers read differently', () => {
  it('refuses a known field with the wrong wire type, which would let a hidden field override the real one', () => {
    // cloud_id = "victim", then replicas (an int32) sent length-delimited around cloud_id = "mine".
    // Go and C++ skip replicas as unknown and see "victim"; protobufjs reads the length as the int
    // and then parses the payload as fields, so on its own it sees "mine".
    const inner = writer().uint32(tag(1, 2)).string('mine').finish();
    const bytes = Buffer.concat([writer().uint32(tag(1, 2)).string('victim').uint32(tag(15, 2)).uint32(inner.length).finish(), inner]);
    expect((Request.decode(bytes) as unknown as { cloud_id: string }).cloud_id).toBe('mine');
    expect(CLOUD.read(body(frame(bytes)))).toEqual({
      ok: false,
      reason: 'body_malformed',
      detail: `the message is not a valid ${REQUEST_TYPE}: field ${REQUEST_TYPE}.replicas arrived with wire type 2, not 0`,
    });
  });

  it('checks the wire types inside every message a body path walks into: a second cloud hidden in a nested field of the wrong type is refused', () => {
    // spec = { cloud = { id: "victim" }, phase (an enum) sent length-delimited around cloud = { id: "mine" } }.
    // Conformant parsers skip the mistyped phase and see "victim"; protobufjs parses its payload as
    // NamespaceSpec fields and sees "mine".
    const SPEC = 'fixture.vmcontroller.v1.NamespaceSpec';
    const hidden = writer().uint32(tag(1, 2)).fork().uint32(tag(1, 2)).string('mine').ldelim().finish();
    const spec = Buffer.concat([writer().uint32(tag(1, 2)).fork().uint32(tag(1, 2)).string('victim').ldelim().uint32(tag(3, 2)).uint32(hidden.length).finish(), hidden]);
    const bytes = Buffer.concat([writer().uint32(tag(3, 2)).uint32(spec.length).finish(), spec]);
    expect((Request.decode(bytes) as unknown as { spec: { cloud: { id: string } } }).spec.cloud.id).toBe('mine');
    expect(reader(['spec.cloud.id']).read(body(frame(bytes)))).toEqual({
      ok: false,
      reason: 'body_malformed',
      detail: `the message is not a valid ${REQUEST_TYPE}: field ${SPEC}.phase arrived with wire type 2, not 0`,
    });
    const wellFormed = message({ spec: { cloud: { id: 'victim' }, phase: 1 } });
    expect(reader(['spec.cloud.id']).read(body(frame(wellFormed)))).toEqual(values({ 'spec.cloud.id': 'victim' }));
  });

  it('refuses a string field sent as a varint', () => {
    const bytes = Buffer.concat([writer().uint32(tag(1, 0)).uint32(8).finish(), writer().uint32(tag(1, 2)).string('victim').finish()]);
    expect(reason(CLOUD.read(body(frame(bytes))))).toBe('body_malformed');
  });

  it('refuses padded varints where protobufjs would lose its place: 32-bit fields, tags and lengths', () => {
    const after = writer().uint32(tag(1, 2)).string('cl0').finish();
    const paddedInt = Buffer.concat([Buffer.from([tag(15, 0), 0x85, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00]), after]);
    expect(reason(CLOUD.read(body(frame(paddedInt))))).toBe('body_malformed');
    const paddedTag = Buffer.from([0x8a, 0x80, 0x80, 0x80, 0x80, 0x00, 0x03, 0x63, 0x6c, 0x30]);
    expect(reason(CLOUD.read(body(frame(paddedTag))))).toBe('body_malformed');
    const paddedLength = Buffer.from([tag(1, 2), 0x83, 0x80, 0x80, 0x80, 0x80, 0x00, 0x63, 0x6c, 0x30]);
    expect(reason(CLOUD.read(body(frame(paddedLength))))).toBe('body_malformed');
    // A padded varint in a 64-bit or unknown field is read the same by every parser.
    const padded64 = Buffer.concat([Buffer.from([tag(5, 0), 0x85, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00]), after]);
    expect(reader(['cloud_id', 'quota_bytes']).read(body(frame(padded64)))).toEqual(values({ cloud_id: 'cl0', quota_bytes: '5' }));
  });

  it('refuses a packed run whose last element runs past the run', () => {
    const bytes = Buffer.concat([Buffer.from([0xca, 0x01, 0x01, 0x80]), writer().uint32(tag(1, 2)).string('cl0').finish()]);
    expect(detail(CLOUD.read(body(frame(bytes))))).toContain(`field ${REQUEST_TYPE}.sizes holds an invalid varint`);
    const wellFormed = writer().uint32(tag(25, 2)).fork().int64(1).int64(-1).ldelim().uint32(tag(1, 2)).string('cl0').finish();
    expect(CLOUD.read(body(frame(wellFormed)))).toEqual(values({ cloud_id: 'cl0' }));
  });

  it('refuses a bool other than 0 or 1 (2^32 reads as false in protobufjs and true in Go)', () => {
    const bytes = Buffer.from([tag(10, 0), 0x80, 0x80, 0x80, 0x80, 0x10]);
    expect((Request.decode(bytes) as unknown as { dry_run: boolean }).dry_run).toBe(false);
    expect(reason(reader(['dry_run']).read(body(frame(bytes))))).toBe('body_malformed');
  });

  it('refuses a string on a body path that is not UTF-8 (decoders would turn it into U+FFFD)', () => {
    const bytes = Buffer.from([tag(1, 2), 0x04, 0x61, 0xff, 0xfe, 0x62]);
    expect(CLOUD.read(body(frame(bytes)))).toEqual({
      ok: false,
      reason: 'body_malformed',
      detail: `the message is not a valid ${REQUEST_TYPE}: string field ${REQUEST_TYPE}.cloud_id is not valid UTF-8`,
    });
  });

  it('refuses field number 0, stray end-group tags, wire types 6 and 7, and a sub-message longer than its parent', () => {
    const shapes = [
      Buffer.from([0x02, 0x00]),
      Buffer.from([tag(9, 4)]),
      Buffer.from([tag(30, 6), 0x00]),
      Buffer.from([tag(30, 7), 0x00]),
      Buffer.from([tag(3, 2), 0x04, tag(1, 2), 0x09, tag(1, 2), 0x01, 0x41]),
    ];
    for (const bytes of shapes) expect(reason(reader(['spec.cloud.id']).read(body(frame(bytes)))), bytes.toString('hex')).toBe('body_malformed');
  });

  it('checks the fields of a group, since where a group ends decides where its message resumes', () => {
    const legacy = loadDescriptors({ protoFiles: [LEGACY_PROTO] });
    const bucket = compileGrpcBodyReader(legacy, 'fixture.legacy.Legacy', 'Put', ['bucket'], 'w', 4096);
    const Put = legacy.lookupType('fixture.legacy.PutRequest');
    const good = Put.encode(Put.fromObject({ extra: { label: 'x', weight: -3 }, bucket: 'b1' })).finish();
    expect(bucket.read(body(frame(good)))).toEqual(values({ bucket: 'b1' }));
    const paddedInGroup = Buffer.from([tag(5, 3), tag(7, 0), 0x83, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00, tag(5, 4), tag(1, 2), 0x01, 0x62]);
    expect(reason(bucket.read(body(frame(paddedInGroup))))).toBe('body_malformed');
    const unterminated = Buffer.from([tag(5, 3), tag(6, 2), 0x01, 0x78, tag(1, 2), 0x01, 0x62]);
    expect(reason(bucket.read(body(frame(unterminated))))).toBe('body_malformed');
  });
});
