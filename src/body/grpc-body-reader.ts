/**
 * A reader for the request message of one unary gRPC method. At load: the method is found by its
 * fully qualified service name, its request type resolved, every path checked against it and
 * compiled. Per request: the envelope checks, one frame, the strict wire check, protobufjs's
 * generated decoder, and a walk of precompiled field names.
 */
import protobuf from 'protobufjs';
import { closestName, didYouMean } from '../base/closest-name.js';
import { BodyConfigError, refuse } from './contract.js';
import type { BodyRead, BodyReader, RequestBody } from './contract.js';
import { checkEnvelope, mediaType, wrongContentType } from './envelope.js';
import { unframeUnary } from './grpc-frame.js';
import { compileMessagePaths } from './message-fields.js';
import { checkMaxBytes, readerOf, uniquePaths } from './reader-options.js';
import { decodeMerged } from './merged-decode.js';
import { checkWire, compileWirePlan } from './wire-check.js';

function allServices(namespace: protobuf.NamespaceBase, into: string[] = []): string[] {
  for (const nested of namespace.nestedArray) {
    if (nested instanceof protobuf.Service) into.push(nested.fullName.replace(/^\./, ''));
    else if (nested instanceof protobuf.Namespace || nested instanceof protobuf.Type) allServices(nested, into);
  }
  return into;
}

/**
 * By exact fully qualified name. protobufjs's own lookup also matches a short name anywhere in the
 * tree, which would let `VmController` silently pick one of two packages' services.
 */
function findService(root: protobuf.Root, name: string, where: string): protobuf.Service {
  let current: protobuf.ReflectionObject | null = root;
  for (const segment of name.replace(/^\./, '').split('.')) {
    current = current instanceof protobuf.Namespace ? current.get(segment) : null;
    if (current === null) break;
  }
  if (current instanceof protobuf.Service) return current;
  const known = allServices(root);
  const close = closestName(name, known);
  const hint = close !== undefined ? `; did you mean "${close}"?` : known.length > 0 ? ` (known: ${known.slice(0, 10).join(', ')})` : '';
  throw new BodyConfigError(`${where}: no gRPC service "${name}" in the loaded descriptors${hint}`);
}

function streamingKind(method: protobuf.Method): string | undefined {
  if (method.requestStream === true && method.responseStream === true) return 'bidirectional-streaming';
  if (method.requestStream === true) return 'client-streaming';
  if (method.responseStream === true) return 'server-streaming';
  return undefined;
}

function isGrpcProto(contentType: string): boolean {
  const type = mediaType(contentType);
  return type === 'application/grpc' || type === 'application/grpc+proto';
}

function reasonOf(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.length > 120 ? `${message.slice(0, 120)}…` : message;
}

export function compileGrpcBodyReader(
  root: protobuf.Root,
  service: string,
  method: string,
  paths: readonly string[],
  where: string,
  maxBytes: number,
): BodyReader {
  const limit = checkMaxBytes(maxBytes, where);
  const unique = uniquePaths(paths, where);
  const found = findService(root, service, where);
  const serviceName = found.fullName.replace(/^\./, '');
  const call = `${serviceName}/${method}`;
  const rpc = Object.hasOwn(found.methods, method) ? found.methods[method] : undefined;
  if (rpc === undefined) {
    const names = Object.keys(found.methods);
    throw new BodyConfigError(`${where}: service ${serviceName} has no method "${method}"${didYouMean(method, names)} (methods: ${names.join(', ')})`);
  }
  const streaming = streamingKind(rpc);
  if (streaming !== undefined) {
    throw new BodyConfigError(`${where}: ${call} is a ${streaming} method; streaming methods cannot use body templates`);
  }
  rpc.resolve();
  const type = rpc.resolvedRequestType;
  if (type === null) throw new BodyConfigError(`${where}: the request type of ${call} cannot be resolved`);
  const typeName = type.fullName.replace(/^\./, '');
  const fields = compileMessagePaths(type, unique, (path) => `${where}: body path "${path}" (request type ${typeName} of ${call})`);
  const plan = compileWirePlan(type, fields.chains);
  const walked = new Set(fields.chains.flat());
  const notGrpc = (contentType: string) => wrongContentType(contentType, 'gRPC with protobuf messages (application/grpc)');

  const read = (body: RequestBody | undefined): BodyRead => {
    const refused = checkEnvelope(body);
    if (refused !== undefined || body === undefined) return refused ?? refuse('body_missing', 'no body');
    if (body.contentType !== undefined && !isGrpcProto(body.contentType)) return notGrpc(body.contentType);
    const unframed = unframeUnary(body.bytes, body.grpcEncoding, limit);
    if (!unframed.ok) return unframed;
    const problem = checkWire(unframed.message, plan);
    if (problem !== undefined) return refuse('body_malformed', `the message is not a valid ${typeName}: ${problem}`);
    let message: protobuf.Message;
    try {
      message = decodeMerged(type, unframed.message, walked);
    } catch (error) {
      return refuse('body_malformed', `the message is not a valid ${typeName}: ${reasonOf(error)}`);
    }
    return fields.extract(message);
  };

  return readerOf(unique, read, (error) => refuse('body_malformed', `the ${typeName} body could not be read: ${reasonOf(error)}`));
}
