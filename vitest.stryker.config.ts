import { defineConfig } from 'vitest/config';

// The tests StrykerJS runs against each mutant (stryker.config.mjs): the unit files and the few
// integration files that need only in-process servers (the OAuth server for introspection and
// discovery, the outbound path). The files that start Envoy or SpiceDB take seconds per run and
// are left to `npm test`.
export default defineConfig({
  test: {
    include: [
      'test/unit/**/*.test.ts',
      'test/integration/introspection.test.ts',
      'test/integration/oidc-discovery.test.ts',
      'test/integration/outbound-path.test.ts',
    ],
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
