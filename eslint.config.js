// ESLint for the whole repository. Type-aware rules (no floating or misused promises, exhaustive
// switches) apply everywhere TypeScript is: a dropped promise on the request path is a check that
// never answers, and a switch that misses a new reason or result kind is a silent fall-through.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { layerRules } from './eslint.layers.js';

export default tseslint.config(
  { ignores: ['dist/**', 'src/generated/**', '.tools/**', 'node_modules/**', 'bench/results/**', '.stryker-tmp/**', 'reports/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      // The vitest configs are outside tsconfig's include (they are not built); lint them on their own.
      parserOptions: { projectService: { allowDefaultProject: ['vitest.config.ts', 'vitest.stryker.config.ts'] }, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': ['error', { considerDefaultExhaustiveForUnions: true }],
      '@typescript-eslint/no-explicit-any': 'error',
      // Signal handlers are installed before what they act on exists (see commands/serve.ts).
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['**/*.js', '**/*.mjs', '**/*.cjs'],
    ...tseslint.configs.disableTypeChecked,
  },
  {
    // Control characters are exactly what these patterns exist to find (header values, log text).
    files: ['src/**/*.ts', 'test/**/*.ts'],
    rules: { 'no-control-regex': 'off' },
  },
  ...layerRules,
);
