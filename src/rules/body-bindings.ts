/**
 * Connects check templates that read `{body.…}` to the body readers (src/body): which paths a
 * list of checks reads, and the reader that yields them for an inbound rule's route or, for
 * on-behalf-of checks, for whichever gRPC method or JSON call is being made. Everything here runs
 * at load; per request a reader's read() is the whole cost, and only where a template reads the body.
 */
import type protobuf from 'protobufjs';
import { BodyConfigError, compileGrpcBodyReader, refuse, compileJsonBodyReader, loadDescriptors } from '../body/body-reader.js';
import type { BodyRead, BodyReader } from '../body/body-reader.js';
import type { BodyConfig } from '../body/config.js';
import { resolveConfigPath } from '../base/paths.js';
import type { RequestContext } from '../core/request-context.js';
import type { CompiledPermissionCheck } from './permission-check-spec.js';

/** The decoding context every body reader of one configuration shares. */
export interface MessageTypes {
  /** Descriptors for gRPC messages; undefined when none are configured. */
  readonly root: protobuf.Root | undefined;
  readonly maxBytes: number;
}

export function loadMessageTypes(config: BodyConfig, baseDir: string): MessageTypes {
  const resolveAll = (files: readonly string[] | undefined) => files?.map((file) => resolveConfigPath(baseDir, file));
  const source = {
    ...(config.protoFiles ? { protoFiles: resolveAll(config.protoFiles) } : {}),
    ...(config.includePaths ? { includePaths: resolveAll(config.includePaths) } : {}),
    ...(config.descriptorSet ? { descriptorSet: resolveConfigPath(baseDir, config.descriptorSet) } : {}),
  };
  const root = config.protoFiles || config.descriptorSet ? loadDescriptors(source) : undefined;
  return { root, maxBytes: config.maxBytes };
}

/** Every message path the checks' templates read, in first-use order. */
export function bodyPathsOf(checks: readonly CompiledPermissionCheck[]): string[] {
  const paths = new Set<string>();
  for (const check of checks) for (const ref of check.references) if (ref.source === 'body') paths.add(ref.name);
  return [...paths];
}

export type RouteKind = { readonly kind: 'grpc'; readonly service: string; readonly method: string | undefined } | { readonly kind: 'http' };

/** The reader for one inbound rule, or undefined when its checks read no message field. */
export function ruleBodyReader(route: RouteKind, paths: readonly string[], types: MessageTypes, where: string): BodyReader | undefined {
  if (paths.length === 0) return undefined;
  if (route.kind === 'http') return compileJsonBodyReader(paths, where, types.maxBytes);
  if (route.method === undefined) {
    throw new BodyConfigError(`${where}: a rule that reads {body.…} must name its gRPC method (the request message type depends on it)`);
  }
  if (types.root === undefined) {
    throw new BodyConfigError(`${where}: reads {body.…} on a gRPC route, but no body.protoFiles or body.descriptorSet is configured`);
  }
  return compileGrpcBodyReader(types.root, route.service, route.method, paths, where, types.maxBytes);
}

/**
 * Readers for checks that apply to any call (on-behalf-of): one per unary gRPC method whose
 * request message has every path, and one for JSON bodies on HTTP calls.
 */
export class CallBodyReaders {
  readonly #byMethod = new Map<string, BodyReader>();
  readonly #json: BodyReader;
  readonly #paths: readonly string[];

  constructor(paths: readonly string[], types: MessageTypes, where: string) {
    this.#paths = paths;
    this.#json = compileJsonBodyReader(paths, where, types.maxBytes);
    if (types.root === undefined) return;
    for (const service of servicesIn(types.root)) {
      const serviceName = service.fullName.replace(/^\./, '');
      for (const method of service.methodsArray) {
        try {
          this.#byMethod.set(`${serviceName}/${method.name}`, compileGrpcBodyReader(types.root, serviceName, method.name, paths, where, types.maxBytes));
        } catch (error) {
          // A method without these fields (or a streaming one) simply cannot be called on behalf of a user.
          if (!(error instanceof BodyConfigError)) throw error;
        }
      }
    }
    if (this.#byMethod.size === 0) {
      throw new BodyConfigError(`${where}: no unary gRPC method in body.protoFiles/descriptorSet has every field of ${paths.map((p) => `{body.${p}}`).join(', ')}`);
    }
  }

  read(request: RequestContext): BodyRead {
    if (request.grpc === undefined) return this.#json.read(request.body);
    const reader = this.#byMethod.get(`${request.grpc.service}/${request.grpc.method}`);
    if (reader !== undefined) return reader.read(request.body);
    return refuse('body_field_missing', `${request.grpc.service}/${request.grpc.method} is not a unary method whose request has ${this.#paths.join(', ')}`);
  }
}

function* servicesIn(namespace: protobuf.NamespaceBase): Generator<protobuf.Service> {
  for (const nested of namespace.nestedArray) {
    if ('methodsArray' in nested) yield nested as protobuf.Service;
    if ('nestedArray' in nested) yield* servicesIn(nested as protobuf.NamespaceBase);
  }
}
