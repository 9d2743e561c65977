/**
 * CheckResponse → bytes, remembered by content. Envoy asks the same questions over and over: a
 * cached inbound allow for one caller renders the same identity headers every time, an outbound
 * allow the same cached service token, a denial the same reason. proto-loader's serializer runs
 * protobufjs `fromObject` (a tree of message objects) and `encode` for each; the profile of the
 * cached inbound path showed that as ~4 % of the sidecar's busy time plus its garbage. Here a
 * compact, unambiguous key of the fields this sidecar renders picks the bytes encoded last time.
 * The listener memoizes the framed message (grpc-server.ts), so an answer is either those shared
 * bytes, never written to again, or one copy with its decision id: no second copy to frame it.
 */
import type { CheckResponse } from '../generated/envoy/service/auth/v3/CheckResponse.js';
import type { HeaderValueOption } from '../generated/envoy/config/core/v3/HeaderValueOption.js';
import { DECISION_ID_LENGTH } from '../observability/tracing-ids.js';
import { DECISION_ID_HEADER } from './check-response.js';

export type ResponseSerializer = (response: CheckResponse) => Buffer;

/** Length-prefixed, so no header value (whatever bytes it holds) can make two responses collide. */
function part(text: string): string {
  return `${text.length}:${text}`;
}

/** Where a response carries its decision id: the last header of its ok or denied response. */
type IdPlace = 'ok_response' | 'denied_response';

/** Stands for the decision id in memo keys and in memoized bytes; the real id is written over it. */
const ID_PLACEHOLDER = 'q'.repeat(DECISION_ID_LENGTH);
const HEX_ID = new RegExp(`^[0-9a-f]{${DECISION_ID_LENGTH}}$`);

/** With `idLast`, the last header's value is keyed as the placeholder: every decision id shares one entry. */
function headersKey(options: readonly HeaderValueOption[] | undefined, idLast = false): string | undefined {
  if (options === undefined) return '';
  let key = `${options.length}[`;
  for (let i = 0; i < options.length; i++) {
    const option = options[i] as HeaderValueOption;
    const header = option.header;
    // Only the shape check-response.ts renders; anything else is encoded without the memo.
    if (!header || option.append_action !== undefined || option.keep_empty_value !== undefined || header.raw_value !== undefined) return undefined;
    const append = option.append === undefined || option.append === null ? 'u' : option.append.value ? 't' : 'f';
    const value = idLast && i === options.length - 1 ? ID_PLACEHOLDER : (header.value ?? '');
    key += part(header.key ?? '') + part(value) + append;
  }
  return key;
}

function keyOf(response: CheckResponse, idPlace: IdPlace | undefined): string | undefined {
  const { status, ok_response: ok, denied_response: denied } = response;
  for (const name in response) {
    if (name !== 'status' && name !== 'ok_response' && name !== 'denied_response') return undefined;
  }
  if (status && (status.details !== undefined && status.details.length > 0)) return undefined;
  let key = `s${status?.code ?? 'u'}|${part(status?.message ?? '')}`;
  if (ok) {
    for (const name in ok) if (name !== 'headers' && name !== 'headers_to_remove') return undefined;
    const headers = headersKey(ok.headers, idPlace === 'ok_response');
    if (headers === undefined) return undefined;
    key += `|ok${headers}|`;
    for (const name of ok.headers_to_remove ?? []) key += part(name);
  }
  if (denied) {
    for (const name in denied) if (name !== 'status' && name !== 'headers' && name !== 'body') return undefined;
    const headers = headersKey(denied.headers, idPlace === 'denied_response');
    if (headers === undefined) return undefined;
    key += `|deny${denied.status?.code ?? 'u'}${headers}${part(denied.body ?? '')}`;
  }
  return idPlace === undefined ? key : `id|${key}`;
}

/** The memo key, or undefined when the response has a field this key does not cover. */
export function responseKey(response: CheckResponse): string | undefined {
  return keyOf(response, undefined);
}

function decisionIdPlace(response: CheckResponse): IdPlace | undefined {
  const place: IdPlace | undefined = response.ok_response ? 'ok_response' : response.denied_response ? 'denied_response' : undefined;
  if (place === undefined) return undefined;
  const headers = response[place]?.headers;
  const last = headers?.[headers.length - 1];
  // Hex only: one byte per character, so the id fills exactly the placeholder's bytes.
  return last?.header?.key === DECISION_ID_HEADER && HEX_ID.test(last.header.value ?? '') ? place : undefined;
}

/** `response` with the placeholder where its decision id is. */
function withPlaceholder(response: CheckResponse, place: IdPlace): CheckResponse {
  const inner = response[place] ?? {};
  const headers = (inner.headers ?? []).slice();
  const last = headers[headers.length - 1];
  headers[headers.length - 1] = { ...last, header: { ...last?.header, value: ID_PLACEHOLDER } };
  return { ...response, [place]: { ...inner, headers } };
}

/**
 * Wraps `serialize` with the memo. Bounded: when `maxEntries` distinct responses are held the
 * memo is dropped and refilled, which costs one miss per live response and no LRU bookkeeping
 * on the hot path (distinct responses track distinct callers, a few thousand at most).
 *
 * The decision id differs on every answer, so it is kept out of the memo: a response is memoized
 * as encoded with a placeholder of the id's fixed length in its place, so every length prefix is
 * the same whatever the id, and each answer is a copy of those bytes with its id written where the
 * placeholder was.
 */
export function memoizeResponseSerializer(serialize: ResponseSerializer, maxEntries = 4096): ResponseSerializer & { readonly size: () => number } {
  const memo = new Map<string, { readonly bytes: Buffer; readonly idAt: number }>();
  const remember = (key: string, entry: { readonly bytes: Buffer; readonly idAt: number }): void => {
    if (memo.size >= maxEntries) memo.clear();
    memo.set(key, entry);
  };
  const memoized = (response: CheckResponse): Buffer => {
    const place = decisionIdPlace(response);
    const key = keyOf(response, place);
    if (key === undefined) return serialize(response);
    let entry = memo.get(key);
    if (entry === undefined) {
      if (place === undefined) {
        entry = { bytes: serialize(response), idAt: -1 };
      } else {
        const bytes = serialize(withPlaceholder(response, place));
        const idAt = bytes.indexOf(ID_PLACEHOLDER, 0, 'latin1');
        // Another value equal to the placeholder would make the place ambiguous: no memo for it.
        if (idAt < 0 || bytes.indexOf(ID_PLACEHOLDER, idAt + 1, 'latin1') >= 0) return serialize(response);
        entry = { bytes, idAt };
      }
      remember(key, entry);
    }
    if (place === undefined) return entry.bytes;
    const bytes = Buffer.allocUnsafe(entry.bytes.length);
    entry.bytes.copy(bytes, 0);
    const header = response[place]?.headers?.[(response[place]?.headers?.length ?? 0) - 1]?.header;
    bytes.write(header?.value ?? '', entry.idAt, 'latin1');
    return bytes;
  };
  return Object.assign(memoized, { size: () => memo.size });
}
