// Summarises a Stryker JSON report (reports/mutation/mutation.json) per module of issue #29, for the
// dated report under docs/mutation/: score per module, then each surviving or uncovered mutant with
// its place, so every one can be given a disposition.
//   node scripts/mutation-summary.mjs [reports/mutation/mutation.json] [--survivors | --tsv]
// --tsv prints every undetected mutant as a tab-separated row (place, status, mutator, replacement,
// the source line it mutates), the format of the dated docs/mutation/<date>-undetected.tsv.
import { readFileSync } from 'node:fs';
import { argv, exit, stdout } from 'node:process';

const print = (line) => stdout.write(`${line}\n`);

const args = argv.slice(2);
const file = args.find((arg) => !arg.startsWith('--')) ?? 'reports/mutation/mutation.json';
const listSurvivors = args.includes('--survivors');
const tsv = args.includes('--tsv');
const report = JSON.parse(readFileSync(file, 'utf8'));

/** The modules the issue names; a file belongs to the first that prefixes it. */
const MODULES = [
  'src/identity/',
  'src/core/',
  'src/rules/',
  'src/inbound/',
  'src/outbound/',
  'src/body/wire-check.ts',
  'src/body/message-fields.ts',
  'src/spicedb/decision-cache.ts',
  'src/spicedb/permission-request.ts',
  'src/envoy/check-request-decoder.ts',
  'src/envoy/request-context-parser.ts',
];

const DETECTED = new Set(['Killed', 'Timeout']);
const UNDETECTED = new Set(['Survived', 'NoCoverage']);

const rows = new Map(MODULES.map((module) => [module, { detected: 0, undetected: 0, invalid: 0, ignored: 0 }]));
const survivors = [];
const rowsTsv = [];
for (const [path, result] of Object.entries(report.files)) {
  const relative = path.replace(/^.*?(src\/)/, '$1');
  const module = MODULES.find((prefix) => relative.startsWith(prefix));
  if (module === undefined) continue;
  const row = rows.get(module);
  for (const mutant of result.mutants) {
    if (DETECTED.has(mutant.status)) row.detected++;
    else if (UNDETECTED.has(mutant.status)) {
      row.undetected++;
      const { line, column } = mutant.location.start;
      survivors.push(`${relative}:${line}:${column} ${mutant.status} ${mutant.mutatorName}: ${JSON.stringify(mutant.replacement ?? '')}`);
      const sourceLine = (result.source.split('\n')[line - 1] ?? '').trim();
      rowsTsv.push([`${relative}:${line}:${column}`, mutant.status, mutant.mutatorName, JSON.stringify(mutant.replacement ?? ''), sourceLine].join('\t'));
    } else if (mutant.status === 'Ignored') row.ignored++;
    else row.invalid++;
  }
}

if (tsv) {
  print(['place', 'status', 'mutator', 'replacement', 'source line'].join('\t'));
  for (const row of rowsTsv.sort()) print(row);
  exit(0);
}

const score = ({ detected, undetected }) => (detected + undetected === 0 ? 'n/a' : `${((100 * detected) / (detected + undetected)).toFixed(1)} %`);
const total = { detected: 0, undetected: 0, invalid: 0, ignored: 0 };
print('| module | score | killed | survived or uncovered | ignored (marked) | compile errors |');
print('|---|---:|---:|---:|---:|---:|');
for (const [module, row] of rows) {
  for (const key of Object.keys(total)) total[key] += row[key];
  print(`| \`${module}\` | ${score(row)} | ${row.detected} | ${row.undetected} | ${row.ignored} | ${row.invalid} |`);
}
print(`| **total** | **${score(total)}** | ${total.detected} | ${total.undetected} | ${total.ignored} | ${total.invalid} |`);
if (listSurvivors) {
  print('');
  for (const line of survivors.sort()) print(line);
}
