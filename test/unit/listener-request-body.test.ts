/**
 * A request's DATA as the gRPC listener takes it (src/envoy/grpc-wire.ts UnaryRequestData): the same
 * message whatever way it is cut into chunks, a refusal as soon as the length prefix says the
 * message cannot be taken, and every byte it reserved in the request memory given back.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { UnaryRequestData } from '../../src/envoy/grpc-wire.js';
import { RequestMemory } from '../../src/envoy/listener-memory.js';

const MAX = 64 * 1024;

function framed(message: Buffer, flags = 0): Buffer {
  const prefix = Buffer.alloc(5);
  prefix[0] = flags;
  prefix.writeUInt32BE(message.length, 1);
  return Buffer.concat([prefix, message]);
}

/** `data` cut at `cuts` (offsets, in any order). */
function chunks(data: Buffer, cuts: readonly number[]): Buffer[] {
  const at = [...new Set(cuts.map((cut) => cut % (data.length + 1)))].sort((a, b) => a - b);
  return [0, ...at].map((start, index) => data.subarray(start, at[index] ?? data.length)).filter((chunk) => chunk.length > 0);
}

describe('UnaryRequestData', () => {
  it('yields the one message whatever chunks it arrives in, and gives its memory back', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), fc.array(fc.nat(), { maxLength: 12 }), (bytes, cuts) => {
        const memory = new RequestMemory(MAX);
        const body = new UnaryRequestData(MAX, memory);
        for (const chunk of chunks(framed(Buffer.from(bytes)), cuts)) expect(body.add(chunk)).toBeUndefined();
        const message = body.end();
        expect(message).toEqual({ ok: true, value: Buffer.from(bytes) });
        expect(memory.heldBytes).toBe(bytes.length);
        body.release();
        expect(memory.heldBytes).toBe(0);
      }),
    );
  });

  it('refuses a message longer than the maximum at its fifth byte, and takes nothing after', () => {
    const memory = new RequestMemory(10 * MAX);
    const body = new UnaryRequestData(MAX, memory);
    const prefix = framed(Buffer.alloc(0));
    prefix.writeUInt32BE(MAX + 1, 1);
    expect(body.add(prefix.subarray(0, 4))).toBeUndefined();
    expect(body.add(prefix.subarray(4))).toEqual({ kind: 'status', status: GrpcStatus.RESOURCE_EXHAUSTED, reason: `a request message over ${MAX} bytes`, tooLarge: true });
    expect(body.refused).toBe(true);
    expect(body.add(Buffer.alloc(1000))).toBeUndefined();
    expect(memory.heldBytes).toBe(0);
  });

  it('refuses a message the request memory has no room for, reserving nothing', () => {
    const memory = new RequestMemory(MAX);
    expect(memory.tryReserve(MAX - 100)).toBe(true);
    const body = new UnaryRequestData(MAX, memory);
    expect(body.add(framed(Buffer.alloc(101)))).toEqual({ kind: 'memory' });
    expect(memory.heldBytes).toBe(MAX - 100);
    // One that fits is taken.
    const fits = new UnaryRequestData(MAX, memory);
    expect(fits.add(framed(Buffer.alloc(100)))).toBeUndefined();
    expect(memory.heldBytes).toBe(MAX);
  });

  it.each([
    ['a compressed message', [framed(Buffer.from('abc'), 1)], GrpcStatus.UNIMPLEMENTED],
    ['a second message in the same chunk', [Buffer.concat([framed(Buffer.from('a')), framed(Buffer.from('b'))])], GrpcStatus.UNIMPLEMENTED],
    ['a second message in a later chunk', [framed(Buffer.from('a')), Buffer.from([0])], GrpcStatus.UNIMPLEMENTED],
  ])('refuses %s as soon as it shows', (_what, data, status) => {
    const memory = new RequestMemory(MAX);
    const body = new UnaryRequestData(MAX, memory);
    const refusals = data.map((chunk) => body.add(chunk)).filter((refusal) => refusal !== undefined);
    expect(refusals).toMatchObject([{ kind: 'status', status }]);
    expect(memory.heldBytes).toBe(0);
  });

  it.each([
    ['no message', [], 'no request message'],
    ['a truncated prefix', [Buffer.from([0, 0, 0])], 'a truncated message prefix'],
    ['a message shorter than its prefix says', [framed(Buffer.alloc(10)).subarray(0, 12)], 'a truncated request message'],
  ])('at the end, tells %s apart', (_what, data, reason) => {
    const body = new UnaryRequestData(MAX, new RequestMemory(MAX));
    for (const chunk of data) expect(body.add(chunk)).toBeUndefined();
    expect(body.end()).toEqual({ ok: false, reason: GrpcStatus.INTERNAL, detail: reason });
  });
});
