// Mutation testing of the modules that decide who gets in (issue #29). `npm run mutation` runs the
// whole set; the report of each run worth keeping is committed under docs/mutation/.
export default {
  mutate: [
    'src/identity/**/*.ts',
    'src/core/**/*.ts',
    'src/inbound/**/*.ts',
    'src/outbound/**/*.ts',
    'src/spicedb/decision-cache.ts',
    'src/rules/**/*.ts',
    'src/body/wire-check.ts',
    'src/body/message-fields.ts',
    'src/spicedb/permission-request.ts',
    'src/envoy/check-request-decoder.ts',
    'src/envoy/request-context-parser.ts',
  ],
  testRunner: 'vitest',
  vitest: { configFile: 'vitest.stryker.config.ts' },
  checkers: ['typescript'],
  tsconfigFile: 'tsconfig.stryker.json',
  // Each mutant runs only the tests that executed its code.
  coverageAnalysis: 'perTest',
  // Static mutants (module-level values: zod schemas, lookup tables, patterns) run when their
  // module loads, so each needs every test of every file that imports it. Stryker put them at
  // ~87 % of a full run's time (~2 h on this 2-core machine); 447 of the 5,053 mutants are covered
  // only while modules load, and are left out (reported as Ignored). `npm run mutation --
  // --ignoreStatic false` includes them.
  ignoreStatic: true,
  // Two cores, shared.
  concurrency: 2,
  timeoutMS: 10_000,
  ignorePatterns: ['dist', '.tools', '.jwtauth', 'coverage', 'bench/results', 'reports'],
  // `npm run mutation` passes --incremental --force: every mutant runs, and this file records the
  // results for the incremental run in scripts/test.sh.
  incrementalFile: 'docs/mutation/stryker-incremental.json',
  reporters: ['clear-text', 'progress', 'html', 'json'],
  htmlReporter: { fileName: 'reports/mutation/mutation.html' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  thresholds: { high: 90, low: 80, break: null },
};
