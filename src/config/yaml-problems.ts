/**
 * Explains YAML-level mistakes in a configuration file in the operator's terms: the line, what
 * YAML made of it, and the edit that fixes it.
 *
 * The usual mistake is a check template without quotes. `{` and `}` are YAML syntax, so
 * `cloud:{path.cloud}` inside `[ ]` or `{ }` is a syntax error, and `{path.cloud}` alone after a key
 * parses as a mapping that validation then refuses as "expected string". Both end in the same
 * instruction: quote the value.
 */
import { isMap, LineCounter, parseAllDocuments } from 'yaml';
import type { Document, YAMLError } from 'yaml';

/** One template reference: `{path.cloud}`, `{subject_type}`, `{header.x-zedtoken}`, `{claim.email|id}`. */
const TEMPLATE_REFERENCE = /\{[A-Za-z_][\w.|-]*\}/;

/**
 * An unquoted `key: value` pair, in block or flow style. The value runs to the next space, comma,
 * bracket or quote, and may contain whole template references; it is a template when it holds one.
 */
const UNQUOTED_PAIR = new RegExp(String.raw`(?:^|[\s{,\[])([A-Za-z_][\w-]*):[ \t]+((?:[^\s,"'{}\[\]]|${TEMPLATE_REFERENCE.source})+)`, 'g');

/** Longest excerpt of a source line shown in a problem; problems stay one readable line each. */
const MAX_EXCERPT_CHARS = 100;

interface UnquotedTemplate {
  readonly key: string;
  readonly value: string;
}

function unquotedTemplatesIn(line: string): UnquotedTemplate[] {
  const templates: UnquotedTemplate[] = [];
  for (const match of line.matchAll(UNQUOTED_PAIR)) {
    const [, key, value] = match;
    if (key !== undefined && value !== undefined && TEMPLATE_REFERENCE.test(value)) templates.push({ key, value });
  }
  return templates;
}

/** JSON's double-quoted string is also a valid YAML double-quoted scalar, escapes included. */
function quoted(template: UnquotedTemplate): string {
  return `${template.key}: ${JSON.stringify(template.value)}`;
}

function quoteInstruction(templates: readonly UnquotedTemplate[]): string {
  return templates.length === 1 ? `quote the value: ${quoted(templates[0] as UnquotedTemplate)}` : `quote the values: ${templates.map(quoted).join(', ')}`;
}

function excerpt(line: string): string {
  const text = line.trim();
  return text.length > MAX_EXCERPT_CHARS ? `${text.slice(0, MAX_EXCERPT_CHARS - 3)}...` : text;
}

function linesOf(text: string): readonly string[] {
  return text.split(/\r?\n/);
}

/** yaml's prettyErrors message repeats the position and then quotes the source; keep only its first sentence. */
function yamlMessage(error: YAMLError): string {
  return (error.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '');
}

function multipleDocuments(text: string): string {
  const lineCounter = new LineCounter();
  const documents = parseAllDocuments(text, { lineCounter });
  const count = Array.isArray(documents) ? documents.length : 0;
  const separators = Array.isArray(documents) ? documents.slice(1).map((document) => lineCounter.linePos(document.range[0]).line) : [];
  const where = separators.length === 1 ? ` (a second one starts at line ${separators[0]})` : separators.length > 1 ? ` (new ones start at lines ${separators.join(', ')})` : '';
  return `the file holds ${count} YAML documents separated by ---${where}; a configuration is one document: remove the extra --- or split the file`;
}

/**
 * After some mistakes (an unquoted template among them) YAML ends the document early and reports
 * every token after it as "Unexpected … token in YAML stream": one error per word, all the same cause.
 */
function isOutsideDocument(error: YAMLError): boolean {
  return error.code === 'UNEXPECTED_TOKEN' && / token in YAML stream\b/.test(yamlMessage(error));
}

/**
 * One problem per mistake, each `YAML <code> at line L, column C: …`. Errors on a line holding an
 * unquoted template are that template's doing: they become one problem that shows the line and the
 * quoted value. A run of tokens YAML could not place in the document becomes one problem too.
 */
export function describeYamlErrors(text: string, errors: readonly YAMLError[]): string[] {
  const lines = linesOf(text);
  const templatesOnLineOf = (error: YAMLError): UnquotedTemplate[] => {
    const line = error.linePos?.[0].line;
    return line === undefined ? [] : unquotedTemplatesIn(lines[line - 1] ?? '');
  };
  const problems: string[] = [];
  const explainedLines = new Set<number>();
  let multipleDocumentsReported = false;
  for (let index = 0; index < errors.length; index++) {
    const error = errors[index] as YAMLError;
    const position = error.linePos?.[0];
    const where = `YAML ${error.code} at line ${position?.line ?? '?'}, column ${position?.col ?? '?'}`;
    if (error.code === 'MULTIPLE_DOCS') {
      if (!multipleDocumentsReported) problems.push(`${where}: ${multipleDocuments(text)}`);
      multipleDocumentsReported = true;
      continue;
    }
    const templates = templatesOnLineOf(error);
    if (position && templates.length > 0) {
      if (!explainedLines.has(position.line)) {
        explainedLines.add(position.line);
        problems.push(`${where}: line ${position.line} reads \`${excerpt(lines[position.line - 1] ?? '')}\`; { } outside quotes are YAML syntax, so ${quoteInstruction(templates)}`);
      }
      continue;
    }
    if (isOutsideDocument(error)) {
      // Folded up to the next line with an unquoted template, so that every such line is still named.
      const folds = (next: YAMLError | undefined): next is YAMLError => next !== undefined && isOutsideDocument(next) && templatesOnLineOf(next).length === 0;
      let lastLine = position?.line;
      while (folds(errors[index + 1])) lastLine = errors[++index]?.linePos?.[0].line;
      const span = lastLine === position?.line ? `line ${lastLine ?? '?'}` : `lines ${position?.line ?? '?'} to ${lastLine ?? '?'}`;
      const cause = problems.length > 0 ? 'the problem above ended the document early; fix it first' : yamlMessage(error);
      problems.push(`${where}: YAML could not read ${span} as part of the configuration: ${cause}`);
      continue;
    }
    problems.push(`${where}: ${yamlMessage(error)}`);
  }
  return problems;
}

/** Where validation found a mapping in place of text, what the source says there, if it explains it. */
export interface ConfigSource {
  /** The explanation and fix when the value at `path` is an unquoted `{…}` template YAML read as a mapping. */
  unquotedTemplateAt(path: readonly PropertyKey[]): string | undefined;
}

export function configSource(text: string, document: Document, lineCounter: LineCounter): ConfigSource {
  const lines = linesOf(text);
  return {
    unquotedTemplateAt(path) {
      const key = path.at(-1);
      if (typeof key !== 'string') return undefined;
      const node = document.getIn(path, true);
      if (!isMap(node) || !node.flow || !node.range) return undefined;
      const written = text.slice(node.range[0], node.range[1]).trim();
      if (!TEMPLATE_REFERENCE.test(written)) return undefined;
      const { line } = lineCounter.linePos(node.range[0]);
      return `got a mapping where text was expected: line ${line} reads \`${excerpt(lines[line - 1] ?? '')}\`; YAML read the unquoted { } as a mapping, so ${quoteInstruction([{ key, value: written }])}`;
    },
  };
}
