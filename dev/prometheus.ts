/**
 * The sidecar's /metrics page (Prometheus text exposition format 0.0.4) read back into numbers, for
 * the tests, the bench, the soak and the demo. One parser, so a label value holding a space, a
 * brace or an escaped quote, or a sample with a timestamp, is read the same way everywhere.
 */

interface Sample {
  /** As exposed, with a histogram's `_bucket`, `_sum` or `_count` suffix. */
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
  /**
   * `name{labels}` as exposed, in the exposition's own label order (prom-client writes a
   * histogram's `le` first): the way tests name a sample.
   */
  readonly series: string;
}

export interface Exposition {
  readonly samples: readonly Sample[];
  /** Each sample's value by its series. */
  readonly series: Map<string, number>;
  /** The sum over every series of `name`, whatever its labels (e.g. one per handle type); undefined when there is none. */
  total(name: string): number | undefined;
}

const NAME = /[a-zA-Z_:][a-zA-Z0-9_:]*/y;
const LABEL_NAME = /[a-zA-Z_][a-zA-Z0-9_]*/y;
const ESCAPED: Readonly<Record<string, string>> = { '\\': '\\', '"': '"', n: '\n' };

function sampleValue(text: string): number {
  // Non-finite values are spelled as Go's ParseFloat reads them, in any case (prom-client writes
  // "Nan" for an empty event-loop histogram); Number() knows none of them.
  const lower = text.toLowerCase();
  if (lower === '+inf' || lower === 'inf') return Number.POSITIVE_INFINITY;
  if (lower === '-inf') return Number.NEGATIVE_INFINITY;
  if (lower === 'nan') return Number.NaN;
  const value = Number(text);
  if (text === '' || Number.isNaN(value)) throw new Error(`not a sample value: ${JSON.stringify(text)}`);
  return value;
}

function parseLine(line: string): Sample {
  const token = (pattern: RegExp, at: number, what: string): string => {
    pattern.lastIndex = at;
    const match = pattern.exec(line);
    if (match === null) throw new Error(`expected ${what} at column ${at + 1}`);
    return match[0];
  };
  const name = token(NAME, 0, 'a metric name');
  const labels: Record<string, string> = {};
  let at = name.length;
  if (line[at] === '{') {
    at++;
    for (;;) {
      while (line[at] === ' ') at++;
      if (line[at] === '}') break;
      const label = token(LABEL_NAME, at, 'a label name');
      at += label.length;
      if (line.slice(at, at + 2) !== '="') throw new Error(`expected =" after label ${label}`);
      at += 2;
      let value = '';
      while (line[at] !== '"') {
        if (at >= line.length) throw new Error(`unterminated value of label ${label}`);
        if (line[at] === '\\') {
          at++;
          value += ESCAPED[line[at] ?? ''] ?? `\\${line[at] ?? ''}`;
        } else {
          value += line[at];
        }
        at++;
      }
      labels[label] = value;
      at++;
      while (line[at] === ' ') at++;
      if (line[at] === ',') at++;
      else if (line[at] !== '}') throw new Error(`expected , or } after label ${label}`);
    }
    at++;
  }
  // After the value may come a timestamp, which nothing here needs.
  const [value = ''] = line.slice(at).trim().split(/\s+/);
  return { name, labels, value: sampleValue(value), series: line.slice(0, at) };
}

export function parseExposition(text: string): Exposition {
  const samples: Sample[] = [];
  const series = new Map<string, number>();
  for (const [index, line] of text.split('\n').entries()) {
    // Comments carry HELP and TYPE, which the callers know already from the metric's name.
    if (line.trim() === '' || line.startsWith('#')) continue;
    try {
      const sample = parseLine(line);
      samples.push(sample);
      series.set(sample.series, sample.value);
    } catch (error) {
      throw new Error(`metrics line ${index + 1} (${line}): ${(error as Error).message}`, { cause: error });
    }
  }
  return {
    samples,
    series,
    total(name) {
      const values = samples.filter((sample) => sample.name === name).map((sample) => sample.value);
      return values.length === 0 ? undefined : values.reduce((sum, value) => sum + value, 0);
    },
  };
}

/** Scrapes a /metrics page, e.g. the sidecar's admin listener's. */
export async function scrapeMetrics(url: string): Promise<Exposition> {
  const response = await fetch(url, { signal: AbortSignal.timeout(5000) });
  // Parsing an error page would read as "every metric is absent", which tests take as 0.
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return parseExposition(await response.text());
}
