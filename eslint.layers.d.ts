// Types for eslint.layers.js, which ESLint loads as plain JavaScript and test/unit/layers.test.ts imports.
import type { Linter } from 'eslint';

export declare const LAYERS: readonly (readonly string[])[];
export declare const layerRules: Linter.Config[];
