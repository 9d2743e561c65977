/**
 * The configuration watch also follows the files the configuration names (certificates, keys,
 * JWKS, secrets): a change to one, in another directory or by a Secret's `..data` swap, asks for
 * a reload; the set of files follows what the configuration names now; a file named before it
 * exists is watched for. The configuration file's own cases are config-watcher.test.ts.
 */
import { mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { watchConfig } from '../../src/lifecycle/config-watcher.js';
import type { ConfigWatch, ConfigWatchTiming } from '../../src/lifecycle/config-watcher.js';
import { createLogger } from '../../src/observability/logger.js';
import { waitFor } from '../../dev/processes.js';
import { createConfigMapVolume } from '../support/configmap-volume.js';

const DEBOUNCE_MS = 50;
/** Long enough that only the directory watches can have reported a change. */
const NO_POLL: ConfigWatchTiming = { debounceMs: DEBOUNCE_MS, backstopPollMs: 600_000, fallbackPollMs: 600_000 };
const QUIET_MS = DEBOUNCE_MS * 6;

const open: ConfigWatch[] = [];
afterEach(() => {
  for (const watch of open.splice(0)) watch.close();
});

function watched(config: string, files: () => readonly string[], timing: ConfigWatchTiming = NO_POLL): { reloads: string[] } {
  const reloads: string[] = [];
  const logger = createLogger({ level: 'silent' });
  open.push(watchConfig(config, (why) => reloads.push(why), logger, timing, files));
  return { reloads };
}

function directory(): string {
  return mkdtempSync(join(tmpdir(), 'jwtauth-watch-named-'));
}

function configFile(): string {
  const file = join(directory(), 'config.yaml');
  writeFileSync(file, 'inbound: {}\n');
  return file;
}

const reach = (reloads: string[], count: number): Promise<void> => waitFor(() => reloads.length >= count, 5_000, () => `reloads: ${JSON.stringify(reloads)}`);

describe('watchConfig: the files the configuration names', () => {
  it("sees a Secret's `..data` swap in another directory, naming the file", async () => {
    const secret = createConfigMapVolume({ 'tls.crt': 'v1', 'tls.key': 'v1' });
    const w = watched(configFile(), () => [secret.path('tls.crt'), secret.path('tls.key')]);
    secret.update({ 'tls.crt': 'v2', 'tls.key': 'v2' });
    await reach(w.reloads, 1);
    await sleep(QUIET_MS);
    // One reload for the swap, both files named in its reason.
    expect(w.reloads).toEqual([`file changed: ${secret.path('tls.crt')}, file changed: ${secret.path('tls.key')}`]);
  });

  it('sees an in-place write of a named file, and ignores its neighbours', async () => {
    const dir = directory();
    const key = join(dir, 'signing.pem');
    writeFileSync(key, 'v1');
    const w = watched(configFile(), () => [key]);
    writeFileSync(join(dir, 'unrelated.txt'), 'x');
    await sleep(QUIET_MS);
    expect(w.reloads).toEqual([]);
    writeFileSync(key, 'v2');
    await reach(w.reloads, 1);
    expect(w.reloads).toEqual([`file changed: ${key}`]);
  });

  it('watches for a named file that does not exist yet', async () => {
    const dir = directory();
    const later = join(dir, 'signing-1.pem');
    const w = watched(configFile(), () => [later]);
    writeFileSync(later, 'arrived');
    await reach(w.reloads, 1);
    expect(w.reloads).toEqual([`file changed: ${later}`]);
  });

  it('follows what the configuration names after each reload request', async () => {
    const config = configFile();
    const dir = directory();
    const first = join(dir, 'first.pem');
    const second = join(directory(), 'second.pem');
    let named = [first];
    const w = watched(config, () => named);
    // The configuration now names another file: the next reload request re-reads the list.
    named = [second];
    writeFileSync(config, 'inbound: { default: allow }\n');
    await reach(w.reloads, 1);
    writeFileSync(second, 'new');
    await reach(w.reloads, 2);
    writeFileSync(first, 'no longer named');
    await sleep(QUIET_MS);
    expect(w.reloads).toEqual(['file changed', `file changed: ${second}`]);
  });

  it('keeps watching the same files when the configuration cannot say which it names', async () => {
    const config = configFile();
    const key = join(directory(), 'key.pem');
    let broken = false;
    const w = watched(config, () => {
      if (broken) throw new Error('the configuration does not parse');
      return [key];
    });
    broken = true;
    writeFileSync(config, ': not yaml');
    await reach(w.reloads, 1);
    writeFileSync(key, 'renewed');
    await reach(w.reloads, 2);
    expect(w.reloads[1]).toBe(`file changed: ${key}`);
  });

  it('polls a named file behind a symlink into a directory nobody watches', async () => {
    const elsewhere = directory();
    const target = join(elsewhere, 'tls.crt');
    writeFileSync(target, 'v1');
    const link = join(directory(), 'tls.crt');
    symlinkSync(target, link);
    const w = watched(configFile(), () => [link], { ...NO_POLL, backstopPollMs: 100 });
    writeFileSync(target, 'v2');
    await reach(w.reloads, 1);
    expect(w.reloads).toEqual([`file changed (poll): ${link}`]);
  });
});
