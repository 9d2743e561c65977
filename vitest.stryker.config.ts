import { defineConfig } from 'vitest/config';

// The tests StrykerJS runs against each mutant (stryker.config.mjs): the unit files and the few
// integration files that need only in-process servers (the OAuth server for introspection and
// discovery, the outbound path). The files that start Envoy or SpiceDB take seconds per run and
// are left to `npm test`.
//
// MUTATION_TESTS (comma-separated globs) narrows this to the files that test one module, for a
// targeted run (scripts/mutation-module.sh): Stryker's initial run and each mutant's run then load
// only those files, not every file that imports the module somewhere down its graph. A narrowed
// run's score is a lower bound: a test outside the set might also have killed a mutant.
const ALL_TESTS = [
  'test/unit/**/*.test.ts',
  'test/integration/introspection.test.ts',
  'test/integration/oidc-discovery.test.ts',
  'test/integration/outbound-path.test.ts',
];
const narrowed = process.env.MUTATION_TESTS?.split(',').filter((glob) => glob.length > 0);

export default defineConfig({
  test: {
    include: narrowed !== undefined && narrowed.length > 0 ? narrowed : ALL_TESTS,
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
