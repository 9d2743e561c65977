/**
 * Request body → field values, for rules whose templates say `{body.a.b}`. The public face of
 * src/body: config, templates and the Envoy adapter import from here only.
 *
 *   loadDescriptors        .proto files or a FileDescriptorSet → a protobufjs Root (at load)
 *   compileGrpcBodyReader  one unary method's request message, the paths checked against it
 *   compileJsonBodyReader  a JSON object body
 *
 * A reader's read() never throws: every failure is a refusal with a BodyRefusal reason, and its
 * detail names paths and fields, never their values.
 */
export { BodyConfigError, refuse } from './contract.js';
export type { BodyRead, BodyReader, RequestBody } from './contract.js';
export { loadDescriptors } from './descriptors.js';
export type { DescriptorSource } from './descriptors.js';
export { compileGrpcBodyReader } from './grpc-body-reader.js';
export { compileJsonBodyReader } from './json-body-reader.js';
