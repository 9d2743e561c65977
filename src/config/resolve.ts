/**
 * Which configuration a command runs with: `--config FILE`, else `JWTAUTH_CONFIG`, else the
 * embedded defaults (so `npm start` works on a fresh clone).
 */
import { embeddedDefaults } from './defaults.js';
import { loadConfigFile, validateConfig } from './load.js';
import type { LoadedConfig } from './load.js';

export const EMBEDDED_ORIGIN = 'embedded defaults';

export function resolveConfig(flag: string | undefined, env: NodeJS.ProcessEnv, cwd: string = process.cwd()): LoadedConfig {
  const path = flag ?? (env.JWTAUTH_CONFIG || undefined);
  if (path !== undefined) return loadConfigFile(path);
  return validateConfig(embeddedDefaults(cwd), EMBEDDED_ORIGIN, cwd);
}
