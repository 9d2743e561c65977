/**
 * A directory laid out the way kubelet mounts a ConfigMap, and updated the way kubelet's atomic
 * writer updates it, so tests meet the real sequence of renames and symlinks:
 *
 *   dir/..2026_01_02_03_04_05.1/config.yaml   the data, one timestamped directory per version
 *   dir/..data -> ..2026_01_02_03_04_05.1     swapped on each update
 *   dir/config.yaml -> ..data/config.yaml     what the pod is given; never touched again
 *
 * An update writes a new timestamped directory, creates the symlink `..data_tmp` to it, renames
 * that over `..data` (the one atomic step), then removes the old directory.
 */
import { mkdirSync, mkdtempSync, readlinkSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface ConfigMapVolume {
  readonly dir: string;
  /** The path a pod reads a key at: `dir/<key>`, a symlink through `..data`. */
  path(key: string): string;
  /** Publishes new contents for the same keys, as kubelet does. */
  update(files: Readonly<Record<string, string>>): void;
}

const DATA_LINK = '..data';
const DATA_LINK_TMP = '..data_tmp';

let versions = 0;

/** kubelet's name for a version: `..` + a timestamp; a counter keeps two versions in one second apart. */
function timestampedName(): string {
  const stamp = new Date().toISOString().slice(0, 19).replace(/[-T:]/g, '_');
  return `..${stamp}.${process.pid}${++versions}`;
}

function writeVersion(dir: string, files: Readonly<Record<string, string>>): string {
  const name = timestampedName();
  mkdirSync(join(dir, name));
  for (const [key, text] of Object.entries(files)) writeFileSync(join(dir, name, key), text);
  return name;
}

export function createConfigMapVolume(files: Readonly<Record<string, string>>, dir = mkdtempSync(join(tmpdir(), 'jwtauth-configmap-'))): ConfigMapVolume {
  symlinkSync(writeVersion(dir, files), join(dir, DATA_LINK));
  for (const key of Object.keys(files)) symlinkSync(join(DATA_LINK, key), join(dir, key));
  return {
    dir,
    path: (key) => join(dir, key),
    update(next) {
      const previous = readlinkSync(join(dir, DATA_LINK));
      symlinkSync(writeVersion(dir, next), join(dir, DATA_LINK_TMP));
      renameSync(join(dir, DATA_LINK_TMP), join(dir, DATA_LINK));
      rmSync(join(dir, previous), { recursive: true, force: true });
    },
  };
}
