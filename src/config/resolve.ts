/**
 * Which configuration a command runs with: `--config FILE`, else `JWTAUTH_CONFIG`, else the
 * embedded defaults (so `npm start` works on a fresh clone).
 */
import { embeddedDefaults } from './defaults.js';
import { loadConfigFile, validateConfig } from './load.js';
import type { LoadedConfig } from './load.js';

export const EMBEDDED_ORIGIN = 'embedded defaults';

export function resolveConfig(flag: string | undefined, env: NodeJS.ProcessEnv, options: { cwd?: string; adminAddress?: string } = {}): LoadedConfig {
  const path = flag ?? (env.JWTAUTH_CONFIG || undefined);
  if (path !== undefined) return loadConfigFile(path);
  const cwd = options.cwd ?? process.cwd();
  return validateConfig(embeddedDefaults(cwd, options.adminAddress), EMBEDDED_ORIGIN, cwd);
}
