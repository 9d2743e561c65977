/**
 * Reading field values out of JSON request bodies (Envoy's `body` field, UTF-8).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { firstDuplicateName } from '../../src/body/json-duplicate-names.js';
import { BodyConfigError, compileJsonBodyReader } from '../../src/body/body-reader.js';
import type { BodyReader } from '../../src/body/body-reader.js';
import { body, detail, reason, values } from '../fixtures/body/fixture.js';

const WHERE = 'inbound.rules[0] (create-namespace).checks[1]';

function reader(paths: readonly string[], maxBytes = 4096): BodyReader {
  return compileJsonBodyReader(paths, WHERE, maxBytes);
}

function json(text: string, extra: Parameters<typeof body>[1] = {}): ReturnType<typeof body> {
  return body(Buffer.from(text, 'utf8'), extra);
}

describe('JSON body: values', () => {
  it('walks nested objects and renders strings, numbers and booleans like claims', () => {
    const read = reader(['cloud_id', 'spec.cloud.id', 'spec.replicas', 'spec.weight', 'spec.dry_run', 'spec.name']).read(
      json('{"cloud_id":"cl0","spec":{"cloud":{"id":"c-7"},"replicas":3,"weight":-0.5,"dry_run":false,"name":"Prod ñ 🎉"}}'),
    );
    expect(read).toEqual(
      values({ cloud_id: 'cl0', 'spec.cloud.id': 'c-7', 'spec.replicas': '3', 'spec.weight': '-0.5', 'spec.dry_run': 'false', 'spec.name': 'Prod ñ 🎉' }),
    );
  });

  it('renders numbers as JavaScript does: integers beyond 2^53 arrive rounded, so ids belong in strings', () => {
    const read = reader(['big', 'exp', 'id']).read(json('{"big":12345678901234567890,"exp":1e21,"id":"12345678901234567890"}'));
    expect(read).toEqual(values({ big: '12345678901234567000', exp: '1e+21', id: '12345678901234567890' }));
  });

  it('refuses null, objects, arrays, empty strings and absent keys, naming the path', () => {
    for (const document of ['{"a":null}', '{"a":{}}', '{"a":[1]}', '{"a":""}', '{"b":"x"}', '{}']) {
      expect(reader(['a']).read(json(document)), document).toEqual({
        ok: false,
        reason: 'body_field_missing',
        detail: 'body field "a" is absent, empty, null, or not a string, number or boolean',
      });
    }
  });

  it('does not walk into arrays or read inherited properties', () => {
    expect(reason(reader(['items.0']).read(json('{"items":["x"]}')))).toBe('body_field_missing');
    expect(reason(reader(['items.length']).read(json('{"items":["x"]}')))).toBe('body_field_missing');
    expect(reason(reader(['constructor.name']).read(json('{}')))).toBe('body_field_missing');
    expect(reason(reader(['a.toString']).read(json('{"a":{}}')))).toBe('body_field_missing');
    // JSON.parse makes "__proto__" an ordinary own key, so it is read as data, never as the prototype.
    expect(reader(['__proto__.x']).read(json('{"__proto__":{"x":"own"}}'))).toEqual(values({ '__proto__.x': 'own' }));
  });

});

describe('JSON body: one reading only', () => {
  // Parsers disagree on a repeated name (JavaScript and Go keep the last, others the first or
  // refuse): the sidecar would check one value while the service acts on the other.
  it.each([
    ['at the top', '{"tenant_id":"t2","tenant_id":"t1"}', 'tenant_id'],
    ['spelled with an escape', '{"a":"x","\\u0061":"y"}', 'a'],
    ['in a nested object, even one no rule reads', '{"a":"x","meta":{"k":1,"k":2}}', 'k'],
    ['in an object inside an array', '{"a":"x","items":[{"id":1},{"id":2,"id":3}]}', 'id'],
    ['after a string holding braces and quotes', '{"a":"{\\"b\\":1,","b":1,"b":2}', 'b'],
  ])('refuses a repeated name %s, naming it', (_where, text, name) => {
    const read = reader(['a']).read(json(text));
    expect(reason(read)).toBe('body_malformed');
    expect(detail(read)).toContain(JSON.stringify(name));
  });

  it('finds a repeat in any JSON, and nothing in JSON without one', () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.dictionary(fc.string(), fc.jsonValue(), { minKeys: 1 }), (anything, object) => {
        // JSON.stringify never repeats a name.
        expect(firstDuplicateName(JSON.stringify(anything))).toBeUndefined();
        const text = JSON.stringify({ ...object, nested: anything });
        const [name] = Object.keys(object) as [string];
        // The same object with its first name written again at its end.
        const repeated = `${text.slice(0, -1)},${JSON.stringify(name)}:null}`;
        expect(firstDuplicateName(repeated)).toBe(name);
      }),
      { numRuns: 500 },
    );
  });

  it.each([
    ['the same name in sibling objects', '{"a":"x","p":{"id":1},"q":{"id":2}}'],
    ['the same name at two depths', '{"a":"x","n":{"a":"y"}}'],
    ['objects in an array', '{"a":"x","items":[{"id":1},{"id":2}]}'],
    ['a name that only reads alike inside a value', '{"a":"\\"a\\":1"}'],
  ])('reads %s', (_where, text) => {
    expect(reader(['a']).read(json(text)).ok).toBe(true);
  });
});

describe('JSON body: envelope', () => {
  it('refuses a missing or empty body', () => {
    expect(reason(reader(['a']).read(undefined))).toBe('body_missing');
    expect(reason(reader(['a']).read(json('')))).toBe('body_missing');
  });

  it('refuses a partial body even when it parses', () => {
    expect(reason(reader(['a']).read(json('{"a":"x"}', { truncated: true })))).toBe('body_truncated');
    expect(reason(reader(['a']).read(json('{"a":"x"}', { contentLength: 100 })))).toBe('body_truncated');
    expect(reader(['a']).read(json('{"a":"x"}', { contentLength: 9 }))).toEqual(values({ a: 'x' }));
  });

  it('refuses a body over maxBytes and reads one exactly at it', () => {
    const text = '{"a":"x"}';
    expect(reader(['a'], text.length).read(json(text))).toEqual(values({ a: 'x' }));
    expect(reader(['a'], text.length - 1).read(json(text))).toEqual({ ok: false, reason: 'body_too_large', detail: 'the JSON body is over the limit of 8 bytes' });
  });

  it('refuses invalid JSON without echoing the body', () => {
    const read = reader(['a']).read(json('{"password": "hunter2", oops}'));
    expect(read).toEqual({ ok: false, reason: 'body_malformed', detail: 'the body is not valid JSON' });
  });

  it('refuses bytes that are not UTF-8 rather than reading U+FFFD', () => {
    expect(reader(['a']).read(body(Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d])))).toEqual({
      ok: false,
      reason: 'body_malformed',
      detail: 'the JSON body is not valid UTF-8',
    });
  });

  it('refuses JSON that is not an object', () => {
    for (const document of ['[]', '"a"', '1', 'null', 'true']) {
      expect(reason(reader(['a']).read(json(document))), document).toBe('body_malformed');
    }
  });

  it('checks the content-type when the adapter passes it', () => {
    const a = reader(['a']);
    expect(a.read(json('{"a":"x"}', { contentType: 'application/json; charset=utf-8' }))).toEqual(values({ a: 'x' }));
    expect(a.read(json('{"a":"x"}', { contentType: 'application/merge-patch+json' }))).toEqual(values({ a: 'x' }));
    expect(detail(a.read(json('{"a":"x"}', { contentType: 'text/plain' })))).toBe('content-type "text/plain" is not JSON');
    expect(reason(a.read(json('{"a":"x"}', { contentType: 'application/x-www-form-urlencoded' })))).toBe('body_malformed');
  });
});

describe('JSON body: configuration', () => {
  it('refuses empty path segments, no paths and a bad size limit, naming where', () => {
    expect(() => reader(['a..b'])).toThrow(new BodyConfigError(`${WHERE}: body path "a..b": has an empty segment`));
    expect(() => reader([])).toThrow(new BodyConfigError(`${WHERE}: a body reader needs at least one body path`));
    expect(() => reader(['a'], -1)).toThrow(BodyConfigError);
    expect(reader(['a', 'b', 'a']).paths).toEqual(['a', 'b']);
  });
});
