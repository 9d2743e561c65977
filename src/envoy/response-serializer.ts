/**
 * CheckResponse → bytes, remembered by content. Envoy asks the same questions over and over: a
 * cached inbound allow for one caller renders the same identity headers every time, an outbound
 * allow the same cached service token, a denial the same reason. proto-loader's serializer runs
 * protobufjs `fromObject` (a tree of message objects) and `encode` for each; the profile of the
 * cached inbound path showed that as ~4 % of the sidecar's busy time plus its garbage. Here a
 * compact, unambiguous key of the fields this sidecar renders picks the bytes encoded last time.
 * grpc-js copies the returned buffer into its frame (server-interceptors serializeMessage), so
 * sharing one buffer between calls is safe.
 */
import type { CheckResponse } from '../generated/envoy/service/auth/v3/CheckResponse.js';
import type { HeaderValueOption } from '../generated/envoy/config/core/v3/HeaderValueOption.js';

export type ResponseSerializer = (response: CheckResponse) => Buffer;

/** Length-prefixed, so no header value (whatever bytes it holds) can make two responses collide. */
function part(text: string): string {
  return `${text.length}:${text}`;
}

function headersKey(options: readonly HeaderValueOption[] | undefined): string | undefined {
  if (options === undefined) return '';
  let key = `${options.length}[`;
  for (const option of options) {
    const header = option.header;
    // Only the shape check-response.ts renders; anything else is encoded without the memo.
    if (!header || option.append_action !== undefined || option.keep_empty_value !== undefined || header.raw_value !== undefined) return undefined;
    const append = option.append === undefined || option.append === null ? 'u' : option.append.value ? 't' : 'f';
    key += part(header.key ?? '') + part(header.value ?? '') + append;
  }
  return key;
}

/** The memo key, or undefined when the response has a field this key does not cover. */
export function responseKey(response: CheckResponse): string | undefined {
  const { status, ok_response: ok, denied_response: denied } = response;
  for (const name in response) {
    if (name !== 'status' && name !== 'ok_response' && name !== 'denied_response') return undefined;
  }
  if (status && (status.details !== undefined && status.details.length > 0)) return undefined;
  let key = `s${status?.code ?? 'u'}|${part(status?.message ?? '')}`;
  if (ok) {
    for (const name in ok) if (name !== 'headers' && name !== 'headers_to_remove') return undefined;
    const headers = headersKey(ok.headers);
    if (headers === undefined) return undefined;
    key += `|ok${headers}|`;
    for (const name of ok.headers_to_remove ?? []) key += part(name);
  }
  if (denied) {
    for (const name in denied) if (name !== 'status' && name !== 'headers' && name !== 'body') return undefined;
    const headers = headersKey(denied.headers);
    if (headers === undefined) return undefined;
    key += `|deny${denied.status?.code ?? 'u'}${headers}${part(denied.body ?? '')}`;
  }
  return key;
}

/**
 * Wraps `serialize` with the memo. Bounded: when `maxEntries` distinct responses are held the
 * memo is dropped and refilled, which costs one miss per live response and no LRU bookkeeping
 * on the hot path (distinct responses track distinct callers, a few thousand at most).
 */
export function memoizeResponseSerializer(serialize: ResponseSerializer, maxEntries = 4096): ResponseSerializer & { readonly size: () => number } {
  const memo = new Map<string, Buffer>();
  const memoized = (response: CheckResponse): Buffer => {
    const key = responseKey(response);
    if (key === undefined) return serialize(response);
    let bytes = memo.get(key);
    if (bytes === undefined) {
      bytes = serialize(response);
      if (memo.size >= maxEntries) memo.clear();
      memo.set(key, bytes);
    }
    return bytes;
  };
  return Object.assign(memoized, { size: () => memo.size });
}
