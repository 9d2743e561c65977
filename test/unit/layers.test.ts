/**
 * The layer lint itself (eslint.layers.js): a deliberate violation of each kind fails it, and an
 * import the order allows passes. That the tree obeys it is `npm test`'s eslint phase.
 */
import { Linter } from 'eslint';
import tseslint from 'typescript-eslint';
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { LAYERS, layerRules } from '../../eslint.layers.js';
import { PACKAGE_ROOT } from '../../src/base/package-root.js';

const linter = new Linter({ cwd: PACKAGE_ROOT, configType: 'flat' });
const config = [{ files: ['**/*.ts'], languageOptions: { parser: tseslint.parser } }, ...layerRules];

/** The restricted-import messages for `code` placed at `file` (relative to the repository). */
function refusals(file: string, code: string): string[] {
  return linter
    .verify(code, config, { filename: `${PACKAGE_ROOT}/${file}` })
    .filter((message) => message.ruleId === 'no-restricted-imports')
    .map((message) => message.message);
}

describe('the layer lint', () => {
  it('refuses an import from a later layer, naming the order', () => {
    const [message] = refusals('src/core/decision.ts', "import { serve } from '../serve.js';\n");
    expect(message).toContain('src/core may not import src/serve.ts');
    expect(message).toContain('docs/architecture.md');
    expect(refusals('src/rules/run-permission-checks.ts', "import type { SchemaModel } from '../spicedb/schema-model.js';\n")).toHaveLength(1);
    expect(refusals('src/envoy/grpc-server.ts', "import { preflight } from '../lifecycle/preflight.js';\n")).toHaveLength(1);
    expect(refusals('src/serve.ts', "import { startPrimary } from './workers/primary.js';\n")).toHaveLength(1);
  });

  it('refuses an import from a peer in the same layer', () => {
    expect(refusals('src/inbound/inbound-authorizer.ts', "import { UpstreamAllowList } from '../outbound/upstreams.js';\n")).toHaveLength(1);
    expect(refusals('src/tokens/token-source.ts', "import { createTokenVerifier } from '../identity/token-verifier.js';\n")).toHaveLength(1);
  });

  it('allows its own folder and every earlier layer', () => {
    expect(refusals('src/lifecycle/runtime.ts', "import { buildAdapters } from './adapters.js';\nimport { failure } from '../core/result.js';\nimport type { Config } from '../config/schema.js';\n")).toEqual([]);
    expect(refusals('src/commands/serve.ts', "import { serve } from '../serve.js';\nimport { startPrimary } from '../workers/primary.js';\n")).toEqual([]);
    expect(refusals('src/serve.ts', "import { Teardown } from './lifecycle/teardown.js';\n")).toEqual([]);
  });

  it('keeps src/ clear of the tests, the bench and the dev harness, and the tests and the bench apart', () => {
    expect(refusals('src/spicedb/watch-feed.ts', "import { startSpiceDb } from '../../dev/spicedb.js';\n")).toHaveLength(1);
    expect(refusals('test/unit/x.test.ts', "import { percentile } from '../../bench/percentiles.js';\n")).toHaveLength(1);
    expect(refusals('bench/soak.ts', "import { startEnvoy } from '../test/support/envoy.js';\n")).toHaveLength(1);
    expect(refusals('dev/sidecar.ts', "import { x } from '../test/support/jwt-fixtures.js';\n")).toHaveLength(1);
    expect(refusals('test/unit/x.test.ts', "import { startSidecar } from '../../dev/sidecar.js';\n")).toEqual([]);
  });
});

describe('docs/architecture.md', () => {
  it('lists the layers the lint enforces, in its order', () => {
    const text = readFileSync(`${PACKAGE_ROOT}/docs/architecture.md`, 'utf8');
    const rows = [...text.matchAll(/^\| (\d+) \| ([^|]+) \|/gm)].map((match) => [...(match[2] ?? '').matchAll(/`([^`]+)`/g)].map((name) => (name[1] ?? '').replace(/\/$/, '')));
    expect(rows).toEqual(LAYERS.map((layer) => [...layer]));
  });
});
