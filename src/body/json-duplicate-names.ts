/**
 * JSON leaves an object with a repeated name undefined (RFC 8259 §4): JSON.parse keeps the last
 * value, other parsers the first, some refuse. A body that says `{"tenant_id":"t2","tenant_id":"t1"}`
 * would be checked against one tenant and acted on as the other, so such a body is refused. This
 * finds the first repeated name in text JSON.parse has already accepted (so it need not check the
 * syntax), comparing names as decoded: `"a"` and `"\u0061"` are the same name.
 */

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** Where a string starting at `start` (its opening quote) ends: the index after its closing quote. */
function stringEnd(text: string, start: number): number {
  let i = start + 1;
  for (;;) {
    const code = text.charCodeAt(i);
    if (code === QUOTE) return i + 1;
    i += code === BACKSLASH ? 2 : 1;
  }
}

/** The first name repeated within one object of `text`, or undefined. `text` must be valid JSON. */
export function firstDuplicateName(text: string): string | undefined {
  // One entry per open container: the names seen so far for an object, null for an array.
  const open: Array<Set<string> | null> = [];
  // In an object, whether the next string is a name (after `{` or `,`) rather than a value.
  let nameNext = false;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code === QUOTE) {
      const end = stringEnd(text, i);
      const names = open[open.length - 1];
      if (nameNext && names) {
        // Escapes decoded the way the parser decoded them.
        const name = text.indexOf('\\', i) < end ? (JSON.parse(text.slice(i, end)) as string) : text.slice(i + 1, end - 1);
        if (names.has(name)) return name;
        names.add(name);
        nameNext = false;
      }
      i = end - 1;
    } else if (code === 0x7b /* { */) {
      open.push(new Set());
      nameNext = true;
    } else if (code === 0x5b /* [ */) {
      open.push(null);
      nameNext = false;
    } else if (code === 0x7d /* } */ || code === 0x5d /* ] */) {
      open.pop();
      nameNext = false;
    } else if (code === 0x2c /* , */) {
      const container = open[open.length - 1];
      nameNext = container !== undefined && container !== null;
    }
  }
  return undefined;
}
