/**
 * The typed view of one request that every decision is made from. Built once per Check by the
 * Envoy adapter (src/envoy/request-context-parser.ts); nothing downstream touches the raw proto.
 */
export type Direction = 'inbound' | 'outbound';

export interface GrpcCall {
  /** Fully qualified service, e.g. `authzed.api.v1.PermissionsService`. */
  readonly service: string;
  readonly method: string;
}

/** The request body as Envoy buffered it (`with_request_body`), for rules that read message fields. */
export interface RequestBody {
  /** Raw bytes as Envoy sent them (`raw_body` keeps the 5-byte gRPC prefix). */
  readonly bytes: Uint8Array;
  /** Envoy said `x-envoy-auth-partial-body: true`: the body was cut at its limit. */
  readonly truncated: boolean;
  /** The content-length header when present. */
  readonly contentLength: number | undefined;
  /** The grpc-encoding header, lower-cased. */
  readonly grpcEncoding: string | undefined;
  /** The content-type header, lower-cased. */
  readonly contentType: string | undefined;
}

export interface RequestContext {
  readonly direction: Direction;
  /** Envoy's `x-request-id`, or the CheckRequest's request id; empty when neither is present. */
  readonly requestId: string;
  /** `:authority` as Envoy saw it (host, or host:port), lower-cased. */
  readonly authority: string;
  /** HTTP method, upper-case. */
  readonly method: string;
  /** Path without the query string, as Envoy saw it (not decoded). */
  readonly path: string;
  /** Query string without the leading `?`; empty when absent. */
  readonly query: string;
  /** Present when the request is gRPC (content-type application/grpc*) and the path is `/svc/method`. */
  readonly grpc: GrpcCall | undefined;
  /** Lower-cased header names, pseudo-headers excluded. Repeated headers are joined with `,`. */
  readonly headers: ReadonlyMap<string, string>;
  /** Names of headers that arrived more than once (or, for single-valued headers, joined by Envoy). */
  readonly duplicateHeaders: ReadonlySet<string>;
  /** The mTLS peer principal Envoy derived from the client certificate (URI SAN, DNS SAN, subject). */
  readonly peerPrincipal: string | undefined;
  /** `context_extensions` from the route, e.g. `direction`, `audience`. */
  readonly contextExtensions: Readonly<Record<string, string>>;
  /** Present when Envoy sent a body (routes that buffer it); undefined otherwise. */
  readonly body: RequestBody | undefined;
}
