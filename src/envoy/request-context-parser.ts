/**
 * CheckRequest → RequestContext. The only code that reads Envoy's attribute protos. It never
 * throws: anything it cannot make sense of becomes a deny reason.
 */
import type { DenyReason } from '../core/decision.js';
import type { Direction, GrpcCall, RequestBody, RequestContext } from '../core/request-context.js';
import type { CheckRequestView, HeaderEntryView } from './check-request-decoder.js';
import { failure, success } from '../core/result.js';
import type { Result } from '../core/result.js';

export interface ParserLimits {
  /** Sum of header name and value lengths considered; more is refused rather than truncated. */
  readonly maxHeaderBytes: number;
}

/** CR, LF and NUL can never be part of a legitimate header value (request smuggling, log forging). */
const FORBIDDEN_IN_VALUE = /[\r\n\0]/;
/** `/package.Service/Method`, the only path shape a gRPC call has. */
const GRPC_PATH = /^\/([A-Za-z_][\w.]*)\/([A-Za-z_]\w*)$/;
const EMPTY: Readonly<Record<string, string>> = Object.freeze({});

function headerValue(entry: HeaderEntryView): string {
  // With encode_raw_headers Envoy sends bytes in raw_value; latin1 keeps every byte, so invalid
  // UTF-8 is carried (and later rejected by whatever parses it) instead of throwing here. The
  // lean decoder has already made that string.
  const raw = entry.raw_value;
  if (raw === undefined || raw.length === 0) return entry.value ?? '';
  return typeof raw === 'string' ? raw : raw.toString('latin1');
}

/** No header arrived twice: the common case shares this one. */
const NO_DUPLICATES: ReadonlySet<string> = new Set();

/** The headers of one request as they are read; one object per Check, not a closure. */
class HeaderReader {
  readonly headers = new Map<string, string>();
  duplicates: Set<string> | undefined;
  path: string | undefined;
  method: string | undefined;
  authority: string | undefined;
  #bytes = 0;

  constructor(private readonly maxBytes: number) {}

  add(rawName: string, value: string): DenyReason | undefined {
    const name = rawName.toLowerCase();
    this.#bytes += name.length + value.length;
    if (this.#bytes > this.maxBytes) return 'headers_too_large';
    if (FORBIDDEN_IN_VALUE.test(value)) return 'invalid_header_value';
    if (name.charCodeAt(0) === 58 /* ':' */) {
      // The last of each wins, as the Map of pseudo-headers this replaced kept it.
      if (name === ':path') this.path = value;
      else if (name === ':method') this.method = value;
      else if (name === ':authority') this.authority = value;
      return undefined;
    }
    const previous = this.headers.get(name);
    if (previous === undefined) {
      this.headers.set(name, value);
    } else {
      this.markDuplicate(name);
      this.headers.set(name, `${previous},${value}`);
    }
    return undefined;
  }

  markDuplicate(name: string): void {
    (this.duplicates ??= new Set()).add(name);
  }
}

/**
 * Which way a Check goes. `listenerDirection` is the direction the listener it arrived on declares
 * (`server.listeners[].direction`), or undefined on `server.grpcAddress`, where only the route's
 * `context_extensions.direction` can say. On a directional listener a route may repeat the
 * listener's direction but never name the other one: a listener reachable from outside the pod
 * (Envoy Gateway's backendRef, Istio's provider through a Service) must never mint tokens.
 */
export function routeDirection(check: CheckRequestView, listenerDirection?: Direction): Result<Direction> {
  const named = check.attributes?.context_extensions?.direction;
  if (named === undefined) {
    return listenerDirection !== undefined
      ? success(listenerDirection)
      : failure('missing_direction', 'context_extensions.direction is not set on this route, and this listener declares no direction');
  }
  if (named !== 'inbound' && named !== 'outbound') return failure('unknown_direction', 'context_extensions.direction must be inbound or outbound');
  if (listenerDirection !== undefined && named !== listenerDirection) {
    return failure('unknown_direction', `context_extensions.direction is ${named} but this listener serves ${listenerDirection} checks only`);
  }
  return success(named);
}

/** The typed request context of a Check, or the deny reason for a request the sidecar cannot read. */
export function parseCheckRequest(check: CheckRequestView, limits: ParserLimits, listenerDirection?: Direction): Result<RequestContext> {
  const routed = routeDirection(check, listenerDirection);
  if (!routed.ok) return routed;
  const direction = routed.value;
  const attributes = check.attributes;
  const contextExtensions = attributes?.context_extensions ?? EMPTY;
  const http = attributes?.request?.http;
  if (!http) return failure('malformed_request', 'CheckRequest has no attributes.request.http');

  const read = new HeaderReader(limits.maxHeaderBytes);
  const headers = read.headers;

  const raw = http.header_map?.headers;
  if (raw && raw.length > 0) {
    for (const entry of raw) {
      const problem = read.add(entry.key ?? '', headerValue(entry));
      if (problem) return failure(problem, `header ${JSON.stringify((entry.key ?? '').slice(0, 64))} rejected`);
    }
  } else if (http.headers) {
    for (const name in http.headers) {
      // Stryker disable next-line StringLiteral: a decoded map always holds a string for each key it has
      const problem = read.add(name, http.headers[name] ?? '');
      if (problem) return failure(problem, `header ${JSON.stringify(name.slice(0, 64))} rejected`);
    }
  }
  // Also with encode_raw_headers: Envoy's codec already folds a repeated inline header such as
  // Authorization into one entry joined with ",", so the list shows it once, comma-joined. A JWT
  // never contains a comma. (The on-behalf-of header, whose name is configured, is checked by the
  // outbound authorizer the same way.)
  if (headers.get('authorization')?.includes(',')) read.markDuplicate('authorization');

  const fullPath = http.path || read.path || '';
  if (fullPath === '') return failure('malformed_request', 'request has no path');
  const queryAt = fullPath.indexOf('?');
  const path = queryAt === -1 ? fullPath : fullPath.slice(0, queryAt);
  const query = queryAt === -1 ? '' : fullPath.slice(queryAt + 1);
  const method = (http.method || read.method || '').toUpperCase();
  if (method === '') return failure('malformed_request', 'request has no method');
  const authority = (http.host || read.authority || headers.get('host') || '').toLowerCase();

  const request: RequestContext = {
    direction,
    requestId: headers.get('x-request-id') ?? http.id ?? '',
    authority,
    method,
    path,
    query,
    grpc: grpcCall(headers.get('content-type'), path),
    headers,
    duplicateHeaders: read.duplicates ?? NO_DUPLICATES,
    peerPrincipal: attributes?.source?.principal || undefined,
    contextExtensions,
    body: requestBody(http.raw_body, http.body, headers),
  };
  return success(request);
}

function grpcCall(contentType: string | undefined, path: string): GrpcCall | undefined {
  if (contentType === undefined || !contentType.startsWith('application/grpc')) return undefined;
  const match = GRPC_PATH.exec(path);
  if (!match) return undefined;
  return { service: match[1] as string, method: match[2] as string };
}

/** Envoy sets this when `allow_partial_message` let it send a body cut at `max_request_bytes`. */
const PARTIAL_BODY_HEADER = 'x-envoy-auth-partial-body';
const EMPTY_BYTES = new Uint8Array(0);
/** What Envoy puts in `body` for each byte that is not UTF-8 (since 1.26). */
const SANITIZED_BYTE = '!';
const GRPC_CONTENT_TYPE = /^application\/grpc/i;

/**
 * The body as bytes: `raw_body` with `pack_as_bytes` (what protobuf needs), else the UTF-8 `body`
 * string. Nothing is decoded here; only rules that read the body pay for that, in src/body.
 *
 * Without `pack_as_bytes` (Envoy Gateway's bodyToExtAuth cannot set it) a gRPC message arrives
 * with every byte that is not UTF-8 replaced by "!", and the altered bytes can be a different valid
 * message from the one the service receives. Only a string without "!" is certainly untouched;
 * any other gRPC body as a string counts as no body, so a rule that reads it denies body_missing.
 */
function requestBody(raw: Buffer | undefined, text: string | undefined, headers: ReadonlyMap<string, string>): RequestBody | undefined {
  let bytes: Uint8Array | undefined;
  if (raw !== undefined && raw.length > 0) bytes = raw;
  else if (text && !(text.includes(SANITIZED_BYTE) && GRPC_CONTENT_TYPE.test(headers.get('content-type') ?? ''))) bytes = Buffer.from(text, 'utf8');
  const partial = headers.get(PARTIAL_BODY_HEADER);
  // A client may send its own copy of the header; Envoy's `true` (joined after it) still counts.
  const truncated = partial !== undefined && partial.split(',').some((value) => value.trim() === 'true');
  if (bytes === undefined && !truncated) return undefined;
  const length = headers.get('content-length');
  return {
    bytes: bytes ?? EMPTY_BYTES,
    truncated,
    contentLength: length !== undefined && /^\d{1,15}$/.test(length) ? Number(length) : undefined,
    grpcEncoding: headers.get('grpc-encoding')?.toLowerCase(),
    contentType: headers.get('content-type')?.toLowerCase(),
  };
}
