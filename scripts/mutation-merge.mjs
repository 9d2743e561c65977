// Folds the results of targeted runs (scripts/mutation-module.sh) into the committed
// docs/mutation/stryker-incremental.json, which the next incremental run (npm run mutation,
// scripts/mutation-incremental.sh) reuses and scripts/mutation-summary.mjs reads for the dated
// report. A targeted run's results (reports/mutation/modules/<name>.incremental.json) also carry
// the older results of every other file; only the files it mutated (<name>.mutate, its --mutate
// globs) are taken from it, with the test files they name.
//   node scripts/mutation-merge.mjs <name> …     (oldest run first: a later run of a file wins)
import { readFileSync, writeFileSync } from 'node:fs';
import { argv, stdout } from 'node:process';

const target = 'docs/mutation/stryker-incremental.json';
const dir = 'reports/mutation/modules';
const merged = JSON.parse(readFileSync(target, 'utf8'));

/** A --mutate glob as a test on a path: `src/inbound/**\/*.ts` holds every .ts file under src/inbound/. */
function matcher(glob) {
  const star = glob.indexOf('*');
  if (star < 0) return (path) => path === glob;
  const prefix = glob.slice(0, star);
  const suffix = glob.endsWith('.ts') ? '.ts' : '';
  return (path) => path.startsWith(prefix) && path.endsWith(suffix);
}

for (const name of argv.slice(2)) {
  const report = JSON.parse(readFileSync(`${dir}/${name}.incremental.json`, 'utf8'));
  const globs = readFileSync(`${dir}/${name}.mutate`, 'utf8').trim().split(',');
  const mutated = globs.map(matcher);
  const taken = Object.keys(report.files).filter((path) => mutated.some((test) => test(path)));
  for (const path of taken) merged.files[path] = report.files[path];
  merged.testFiles = { ...merged.testFiles, ...report.testFiles };
  stdout.write(`${name}: ${taken.join(', ')}\n`);
}
writeFileSync(target, JSON.stringify(merged));
stdout.write(`${target}: ${Object.keys(merged.files).length} mutated files, ${Object.keys(merged.testFiles ?? {}).length} test files\n`);
