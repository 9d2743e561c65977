/**
 * A Check handler answers with the framed CheckResponse the listener writes; tests read it back as
 * Envoy would, so they check the bytes that go out, not an object before encoding.
 */
import type { CheckResponse__Output } from '../../src/generated/envoy/service/auth/v3/CheckResponse.js';
import { envoyAuthProto } from '../../src/envoy/protos.js';

export function decodeFramedResponse(framed: Buffer): CheckResponse__Output {
  if (framed.length < 5 || framed[0] !== 0 || framed.readUInt32BE(1) !== framed.length - 5) throw new Error('not one uncompressed gRPC message');
  return envoyAuthProto().envoy.service.auth.v3.Authorization.service.Check.responseDeserialize(framed.subarray(5));
}
