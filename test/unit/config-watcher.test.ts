/**
 * The configuration watch sees every way a file is replaced (in place, renamed over, a ConfigMap's
 * `..data` swap), folds bursts and SIGHUPs into one reload, polls where a directory watch cannot
 * see; and a settled read refuses a file that never reads the same twice.
 */
import { existsSync, mkdirSync, mkdtempSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { watchConfig } from '../../src/lifecycle/config-watcher.js';
import type { ConfigWatch, ConfigWatchTiming } from '../../src/lifecycle/config-watcher.js';
import { ConfigError, loadConfigFile } from '../../src/config/load.js';
import { readSettledFile } from '../../src/base/settled-read.js';
import { createLogger } from '../../src/observability/logger.js';
import { waitFor } from '../../dev/processes.js';
import { createConfigMapVolume } from '../support/configmap-volume.js';

const DEBOUNCE_MS = 50;
/** Long enough that only the directory watch can have reported a change (the poll gets its own tests). */
const NO_POLL: ConfigWatchTiming = { debounceMs: DEBOUNCE_MS, backstopPollMs: 600_000, fallbackPollMs: 600_000 };
/** How long "nothing more happens" is watched for: many debounce periods. */
const QUIET_MS = DEBOUNCE_MS * 6;

const open: ConfigWatch[] = [];
afterEach(() => {
  for (const watch of open.splice(0)) watch.close();
});

interface Watched {
  readonly reloads: string[];
  readonly logLines: string[];
  readonly watch: ConfigWatch;
}

function watched(path: string, timing: ConfigWatchTiming = NO_POLL): Watched {
  const reloads: string[] = [];
  const logLines: string[] = [];
  const logger = createLogger({ level: 'warn', destination: { write: (line: string) => void logLines.push(line) } });
  const watch = watchConfig(path, (why) => reloads.push(why), logger, timing);
  open.push(watch);
  return { reloads, logLines, watch };
}

function configDir(): { dir: string; file: string } {
  const dir = mkdtempSync(join(tmpdir(), 'jwtauth-watch-'));
  const file = join(dir, 'config.yaml');
  writeFileSync(file, 'inbound: {}\n');
  return { dir, file };
}

const reloadsReach = (w: Watched, count: number): Promise<void> =>
  waitFor(() => w.reloads.length >= count, 5_000, () => `reloads: ${JSON.stringify(w.reloads)}; log: ${w.logLines.join('')}`);

describe('watchConfig', () => {
  it('sees an in-place write', async () => {
    const { file } = configDir();
    const w = watched(file);
    writeFileSync(file, 'inbound: { default: allow }\n');
    await reloadsReach(w, 1);
    expect(w.reloads).toEqual(['file changed']);
  });

  it('sees a file renamed over it, again and again (the path, not the first inode, is watched)', async () => {
    const { dir, file } = configDir();
    const w = watched(file);
    for (let n = 1; n <= 3; n++) {
      writeFileSync(join(dir, `config.yaml.${n}.tmp`), `inbound: {}\n# ${n}\n`);
      renameSync(join(dir, `config.yaml.${n}.tmp`), file);
      await reloadsReach(w, n);
    }
    await sleep(QUIET_MS);
    expect(w.reloads).toHaveLength(3);
  });

  it('sees each ConfigMap update, where kubelet swaps the ..data symlink and never touches the file', async () => {
    const volume = createConfigMapVolume({ 'config.yaml': 'inbound: {}\n' });
    const w = watched(volume.path('config.yaml'));
    for (let n = 1; n <= 2; n++) {
      volume.update({ 'config.yaml': `inbound: {}\n# ${n}\n` });
      await reloadsReach(w, n);
    }
    await sleep(QUIET_MS);
    expect(w.reloads).toEqual(['file changed', 'file changed']);
  });

  it('ignores other entries of the directory (temporary files, backups, other keys)', async () => {
    const { dir, file } = configDir();
    const w = watched(file);
    writeFileSync(join(dir, 'other.yaml'), 'x');
    writeFileSync(join(dir, 'config.yaml.swp'), 'x');
    renameSync(join(dir, 'config.yaml.swp'), join(dir, 'config.yaml~'));
    await sleep(QUIET_MS);
    expect(w.reloads).toEqual([]);
  });

  it('folds a burst of writes and SIGHUPs into one reload that names both causes', async () => {
    const { file } = configDir();
    const w = watched(file);
    for (let n = 0; n < 5; n++) {
      writeFileSync(file, `inbound: {}\n# ${n}\n`);
      w.watch.trigger('SIGHUP');
    }
    await reloadsReach(w, 1);
    await sleep(QUIET_MS);
    expect(w.reloads).toHaveLength(1);
    expect(w.reloads[0]).toContain('SIGHUP');
    expect(w.reloads[0]).toContain('file changed');
  });

  it('still reloads a file that never stops changing, once maxDelayMs has passed', async () => {
    const { file } = configDir();
    const w = watched(file, { ...NO_POLL, debounceMs: 100, maxDelayMs: 300 });
    const stopAt = Date.now() + 2_000;
    let n = 0;
    // A write every 20 ms (each well within the debounce) for 2 s: a debounce alone would wait it out.
    while (Date.now() < stopAt && w.reloads.length === 0) {
      writeFileSync(file, `inbound: {}\n# ${n++}\n`);
      await sleep(20);
    }
    expect(w.reloads.length, 'no reload while the file kept changing').toBeGreaterThan(0);
  });

  it('polls a symlink whose target lives in another directory, where the directory watch cannot see', async () => {
    const elsewhere = configDir();
    const dir = mkdtempSync(join(tmpdir(), 'jwtauth-watch-link-'));
    const link = join(dir, 'config.yaml');
    symlinkSync(elsewhere.file, link);
    const w = watched(link, { ...NO_POLL, backstopPollMs: 100 });
    writeFileSync(elsewhere.file, 'inbound: { default: allow }\n');
    await reloadsReach(w, 1);
    expect(w.reloads).toEqual(['file changed (poll)']);
  });

  it('does not report again from the poll what the directory watch already reported', async () => {
    const { file } = configDir();
    const w = watched(file, { ...NO_POLL, backstopPollMs: 50 });
    writeFileSync(file, 'inbound: { default: allow }\n');
    await reloadsReach(w, 1);
    await sleep(QUIET_MS);
    expect(w.reloads).toEqual(['file changed']);
  });

  it('falls back to polling, and says so once, when the directory cannot be watched', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'jwtauth-watch-')), 'not-yet');
    const file = join(dir, 'config.yaml');
    const w = watched(file, { ...NO_POLL, fallbackPollMs: 50 });
    expect(w.logLines.filter((line) => line.includes('cannot watch the configuration directory'))).toHaveLength(1);
    mkdirSync(dir);
    writeFileSync(file, 'inbound: {}\n');
    await reloadsReach(w, 1);
    expect(w.reloads).toEqual(['file changed (poll)']);
    expect(w.logLines).toHaveLength(1);
  });

  it('reports nothing once closed', async () => {
    const { file } = configDir();
    const w = watched(file, { ...NO_POLL, backstopPollMs: 50 });
    w.watch.trigger('SIGHUP');
    w.watch.close();
    writeFileSync(file, 'inbound: { default: allow }\n');
    w.watch.trigger('SIGHUP');
    await sleep(QUIET_MS);
    expect(w.reloads).toEqual([]);
  });
});

describe('settled read', () => {
  it('returns the bytes of a file nobody is writing', () => {
    const { file } = configDir();
    expect(readSettledFile(file).toString('utf8')).toBe('inbound: {}\n');
  });

  it('throws the error two reads agree on, e.g. a missing file', () => {
    expect(() => readSettledFile('/nonexistent/jwtauth.yaml')).toThrow(expect.objectContaining({ code: 'ENOENT' }));
  });

  // Every read of this file returns a new UUID: a file that never reads the same twice, deterministically.
  const alwaysChanging = '/proc/sys/kernel/random/uuid';
  it.runIf(existsSync(alwaysChanging))('refuses a file that keeps changing, with a ConfigError that says so', () => {
    let refusal: unknown;
    try {
      loadConfigFile(alwaysChanging);
    } catch (error) {
      refusal = error;
    }
    expect(refusal).toBeInstanceOf(ConfigError);
    expect((refusal as ConfigError).problems).toEqual([expect.stringMatching(/^the file kept changing while being read \(10 reads, 25 ms apart\)/)]);
  });
});
