/** Files named in the configuration resolve against the configuration file's own directory. */
import { isAbsolute, resolve } from 'node:path';

export function resolveConfigPath(baseDir: string, file: string): string {
  return isAbsolute(file) ? file : resolve(baseDir, file);
}
