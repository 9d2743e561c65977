/**
 * A reader for JSON request bodies: one UTF-8 JSON object, at most maxBytes, complete.
 */
import { refuse } from './contract.js';
import type { BodyRead, BodyReader, RequestBody } from './contract.js';
import { checkEnvelope, mediaType, wrongContentType } from './envelope.js';
import { firstDuplicateName } from './json-duplicate-names.js';
import { compileJsonPaths } from './json-fields.js';
import { checkMaxBytes, readerOf, uniquePaths } from './reader-options.js';

// fatal: bytes that are not UTF-8 are refused, not silently replaced with U+FFFD.
const utf8 = new TextDecoder('utf-8', { fatal: true });

const NOT_UTF8 = refuse('body_malformed', 'the JSON body is not valid UTF-8');
// The parser's own message quotes the body, which may hold secrets: never pass it on.
const NOT_JSON = refuse('body_malformed', 'the body is not valid JSON');
const NOT_OBJECT = refuse('body_malformed', 'the JSON body is not an object');

function isJsonMediaType(contentType: string): boolean {
  const type = mediaType(contentType);
  return type === 'application/json' || (type.startsWith('application/') && type.endsWith('+json'));
}

export function compileJsonBodyReader(paths: readonly string[], where: string, maxBytes: number): BodyReader {
  const limit = checkMaxBytes(maxBytes, where);
  const unique = uniquePaths(paths, where);
  const fields = compileJsonPaths(unique, (path) => `${where}: body path "${path}"`);
  const tooLarge = refuse('body_too_large', `the JSON body is over the limit of ${limit} bytes`);

  const read = (body: RequestBody | undefined): BodyRead => {
    const refused = checkEnvelope(body);
    if (refused !== undefined || body === undefined) return refused ?? refuse('body_missing', 'no body');
    if (body.contentType !== undefined && !isJsonMediaType(body.contentType)) return wrongContentType(body.contentType, 'JSON');
    if (body.bytes.length > limit) return tooLarge;
    let text: string;
    try {
      text = utf8.decode(body.bytes);
    } catch {
      return NOT_UTF8;
    }
    let document: unknown;
    try {
      document = JSON.parse(text);
    } catch {
      return NOT_JSON;
    }
    if (document === null || typeof document !== 'object' || Array.isArray(document)) return NOT_OBJECT;
    const repeated = firstDuplicateName(text);
    // The name, never a value: names are the rule's vocabulary, values the caller's data.
    if (repeated !== undefined) return refuse('body_malformed', `the JSON body repeats the name ${JSON.stringify(repeated.slice(0, 64))} in one object`);
    return fields.extract(document as Record<string, unknown>);
  };

  // JSON errors can quote the document, so the detail never includes them.
  return readerOf(unique, read, () => refuse('body_malformed', 'the JSON body could not be read'));
}
