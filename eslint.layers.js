// The layer order of src/ (docs/architecture.md), enforced with ESLint's no-restricted-imports:
// a module may import from its own folder and from the layers before it, never from a peer in its
// own layer or from one after it. Specifiers are matched as written, which is exact here because
// src/ imports its own modules by relative path only, one folder deep.
//
// Also: src/ imports nothing from the tests, the bench, the dev harness or the examples; the tests
// and the bench share helpers only through dev/, never each other's.

/** Bottom to top. A name ending in .ts is a file directly in src/; anything else is a folder. */
export const LAYERS = [
  ['generated', 'base'],
  ['core'],
  ['body'],
  ['rules'],
  ['inbound', 'outbound'],
  ['observability'],
  ['identity', 'spicedb', 'tokens'],
  ['envoy', 'admin'],
  ['config'],
  ['lifecycle'],
  ['serve.ts'],
  ['workers', 'envoy-config'],
  ['commands'],
  ['cli.ts'],
];

const escape = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
/** How a module at `depth` folders below src/ names `unit`. */
const specifier = (unit, depth) => `${depth === 0 ? '\\./' : '\\.\\./'}${unit.endsWith('.ts') ? `${escape(unit.slice(0, -3))}\\.js$` : `${escape(unit)}/`}`;
const order = LAYERS.map((layer) => layer.join(', ')).join(' → ');

function restrict(files, patterns) {
  return { files, rules: { 'no-restricted-imports': ['error', { patterns }] } };
}

function layerBlock(unit, rank) {
  const depth = unit.endsWith('.ts') ? 0 : 1;
  const above = LAYERS.slice(rank).flat().filter((other) => other !== unit);
  return restrict(depth === 0 ? [`src/${unit}`] : [`src/${unit}/**/*.ts`], [
    ...above.map((other) => ({
      regex: `^${specifier(other, depth)}`,
      message: `src/${unit} may not import src/${other}: the layers run ${order} (docs/architecture.md).`,
    })),
    { regex: '^(\\.\\./)+(test|bench|dev|examples|scripts)/', message: 'src/ never imports the tests, the bench, the dev harness or the examples.' },
  ]);
}

export const layerRules = [
  ...LAYERS.flatMap((layer, rank) => layer.filter((unit) => unit !== 'generated').map((unit) => layerBlock(unit, rank))),
  restrict(['test/**/*.ts'], [{ regex: '^(\\.\\./)+bench/', message: 'tests share helpers with the bench only through dev/.' }]),
  restrict(['bench/**/*.ts'], [
    { regex: '^(\\.\\./)+test/', message: 'the bench shares helpers with the tests only through dev/.' },
    { regex: '^(\\.\\./)+examples/', message: 'the bench does not run the demo; what both need lives in dev/.' },
  ]),
  restrict(['dev/**/*.ts'], [{ regex: '^(\\.\\./)+(test|bench|examples)/', message: 'dev/ is below the tests, the bench and the demo: it imports none of them.' }]),
  restrict(['examples/**/*.ts'], [{ regex: '^(\\.\\./)+(test|bench)/', message: 'the examples are below the tests and the bench: they import neither.' }]),
];
