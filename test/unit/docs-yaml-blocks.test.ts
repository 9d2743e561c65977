/**
 * Every YAML block in README.md and docs/*.md is valid as shown, so a reader can copy it. Each block
 * must parse; a block of sidecar configuration (identified by its top-level keys) must pass the
 * schema of every section it holds, and the whole configuration's validation when it has an inbound
 * or outbound section. Envoy and Kubernetes blocks only need to parse.
 *
 * A block that is deliberately partial, or deliberately wrong, says so on the line before it:
 *   <!-- yaml-block: fragment -->          must parse; not validated
 *   <!-- yaml-block: invalid-example -->   must fail to parse or to validate (it shows a mistake)
 */
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import type { z } from 'zod';
import { ConfigError, validateConfig } from '../../src/config/load.js';
import { configSchema } from '../../src/config/schema.js';

const REPOSITORY = new URL('../../', import.meta.url);

const MARKDOWN_FILES = [
  'README.md',
  ...readdirSync(new URL('docs/', REPOSITORY))
    .filter((name) => name.endsWith('.md'))
    .sort()
    .map((name) => `docs/${name}`),
];

const MARKS = ['checked', 'fragment', 'invalid-example'] as const;
type Mark = (typeof MARKS)[number];

interface YamlBlock {
  readonly file: string;
  /** Line in the markdown file of the block's first line of YAML. */
  readonly firstLine: number;
  readonly text: string;
  readonly mark: Mark;
}

const OPENING_FENCE = /^(\s*)```ya?ml\s*$/;
const CLOSING_FENCE = /^\s*```\s*$/;
const MARK_COMMENT = /^\s*<!--\s*yaml-block:\s*(\S+)\s*-->\s*$/;

function isMark(word: string): word is Mark {
  return (MARKS as readonly string[]).includes(word);
}

/** The mark on the nearest non-blank line above the fence; unknown words fail loudly, not silently. */
function markAbove(lines: readonly string[], fenceIndex: number, where: string): Mark {
  let index = fenceIndex - 1;
  while (index >= 0 && (lines[index] ?? '').trim() === '') index--;
  const word = MARK_COMMENT.exec(lines[index] ?? '')?.[1];
  if (word === undefined) return 'checked';
  if (!isMark(word) || word === 'checked') throw new Error(`${where}: unknown yaml-block mark "${word}"; use fragment or invalid-example`);
  return word;
}

function yamlBlocksIn(file: string, markdown: string): YamlBlock[] {
  const lines = markdown.split('\n');
  const blocks: YamlBlock[] = [];
  for (let index = 0; index < lines.length; index++) {
    const opening = OPENING_FENCE.exec(lines[index] ?? '');
    if (!opening) continue;
    const indent = opening[1]?.length ?? 0;
    const start = index + 1;
    let end = start;
    while (end < lines.length && !CLOSING_FENCE.test(lines[end] ?? '')) end++;
    if (end === lines.length) throw new Error(`${file}:${index + 1}: yaml block is never closed`);
    // A block inside a list item is indented with it; the YAML starts at the fence's column.
    const text = lines.slice(start, end).map((line) => line.slice(Math.min(indent, line.length - line.trimStart().length))).join('\n');
    blocks.push({ file, firstLine: start + 1, text, mark: markAbove(lines, index, `${file}:${index + 1}`) });
    index = end;
  }
  return blocks;
}

const CONFIG_KEYS: ReadonlySet<string> = new Set(Object.keys(configSchema.shape));

function isConfigKey(key: string): key is keyof typeof configSchema.shape {
  return CONFIG_KEYS.has(key);
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function describeIssues(section: string, issues: readonly z.core.$ZodIssue[]): string[] {
  return issues.map((issue) => `${[section, ...issue.path.map(String)].join('.')}: ${issue.message}`);
}

/** Problems of one document of sidecar configuration, section by section, then as a whole. */
function configurationProblems(config: Record<string, unknown>, where: string): string[] {
  const keys = Object.keys(config);
  const foreign = keys.filter((key) => !isConfigKey(key));
  if (foreign.length > 0) return [`mixes sidecar configuration keys with others (${foreign.join(', ')}): a misspelt section, or two kinds of YAML in one block`];
  const problems: string[] = [];
  for (const key of keys) {
    if (!isConfigKey(key)) continue;
    const sectionSchema: z.ZodType = configSchema.shape[key];
    const result = sectionSchema.safeParse(config[key]);
    if (!result.success) problems.push(...describeIssues(key, result.error.issues));
  }
  if (problems.length === 0 && ('inbound' in config || 'outbound' in config)) {
    try {
      validateConfig(config, where, new URL('docs/', REPOSITORY).pathname);
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      problems.push(...error.problems.map((problem) => `whole configuration: ${problem}`));
    }
  }
  return problems;
}

/** Every problem of a block, each naming its line in the markdown file. */
function problemsOf(block: YamlBlock): string[] {
  const where = `${block.file}:${block.firstLine}`;
  const documents = parseAllDocuments(block.text, { prettyErrors: true, uniqueKeys: true });
  if (!Array.isArray(documents) || documents.length === 0) return [`${where}: the block holds no YAML`];
  const problems: string[] = [];
  for (const document of documents) {
    for (const error of document.errors) {
      const position = error.linePos?.[0];
      const line = position === undefined ? block.firstLine : block.firstLine + position.line - 1;
      // yaml's message ends with the position within the block; the file's line and column say it instead.
      const message = (error.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '');
      problems.push(`${block.file}:${line}:${position?.col ?? '?'}: YAML ${error.code}: ${message}`);
    }
    if (document.errors.length > 0 || block.mark === 'fragment') continue;
    const value: unknown = document.toJS();
    const keys = isMapping(value) ? Object.keys(value) : [];
    if (isMapping(value) && keys.some(isConfigKey)) problems.push(...configurationProblems(value, where).map((problem) => `${where}: ${problem}`));
  }
  return problems;
}

const BLOCKS = MARKDOWN_FILES.flatMap((file) => yamlBlocksIn(file, readFileSync(new URL(file, REPOSITORY), 'utf8')));

describe('YAML blocks in README.md and docs/*.md', () => {
  it('finds the blocks, configuration among them', () => {
    expect(BLOCKS.length).toBeGreaterThanOrEqual(10);
    expect(BLOCKS.some((block) => /^inbound:/m.test(block.text))).toBe(true);
  });

  it.each(BLOCKS.map((block) => [`${block.file}:${block.firstLine} (${block.mark})`, block] as const))('%s', (_name, block) => {
    const problems = problemsOf(block);
    if (block.mark === 'invalid-example') expect(problems, 'an invalid example that is valid misleads the reader').not.toEqual([]);
    else expect(problems).toEqual([]);
  });
});

describe('the block checker', () => {
  const markdown = [
    '# A page', // 1
    '', // 2
    '```yaml', // 3
    'inbound:', // 4
    '  rules:', // 5
    '    - name: r', // 6
    '      match: { http: { path: /v1/clouds/{cloud} } }', // 7
    '```', // 8
    '- a list item with a block:', // 9
    '  ```yaml', // 10
    '  inbound: { default: maybe }', // 11
    '  ```', // 12
    '```yaml', // 13
    'tokens: { source: { kind: mint } }', // 14
    'outbound: {}', // 15
    '```', // 16
    '```yaml', // 17
    'inbound: {}', // 18
    'static_resources: {}', // 19
    '```', // 20
    '```yaml', // 21
    'static_resources: { listeners: [] }', // 22
    '```', // 23
    '<!-- yaml-block: fragment -->', // 24
    '```yaml', // 25
    'inbound: { default: maybe }', // 26
    '```', // 27
  ].join('\n');
  const [unquoted, indented, incomplete, mixed, envoy, fragment] = yamlBlocksIn('page.md', markdown).map(problemsOf);

  it('names the file, line and column of a YAML error', () => {
    expect(unquoted?.[0]).toMatch(/^page\.md:7:\d+: YAML UNEXPECTED_TOKEN: /);
  });

  it('validates each section, and a whole configuration as one', () => {
    expect(indented).toEqual([expect.stringMatching(/^page\.md:11: inbound\.default: /)]);
    expect(incomplete).toEqual([expect.stringMatching(/^page\.md:14: whole configuration: service: /)]);
    expect(mixed).toEqual([expect.stringMatching(/^page\.md:18: mixes sidecar configuration keys with others \(static_resources\)/)]);
  });

  it('only parses Envoy blocks and marked fragments', () => {
    expect(envoy).toEqual([]);
    expect(fragment).toEqual([]);
  });

  it('refuses a mark it does not know', () => {
    expect(() => yamlBlocksIn('page.md', '<!-- yaml-block: skip -->\n```yaml\na: 1\n```')).toThrow(/page\.md:2: unknown yaml-block mark "skip"/);
  });
});
