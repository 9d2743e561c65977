/**
 * Notices every way a configuration file is changed, and asks for one reload per change.
 *
 * Watching the file itself (fs.watch on the path) follows its inode, so it misses every
 * replacement: `mv tmp config.yaml`, an editor's rename-on-save, and a Kubernetes ConfigMap
 * update, where kubelet writes a new timestamped directory, points a `..data_tmp` symlink at it
 * and renames that over `..data` (the mounted `config.yaml` is a symlink to `..data/config.yaml`).
 * So the DIRECTORY holding the file is watched, and its events are kept when they name the file,
 * name `..data`, or name nothing (the platform did not say which entry changed).
 *
 * A slow poll of the path (a stat, which follows symlinks) runs as well, as a
 * backstop for what a directory watch cannot see: a path whose directory is itself a symlink that
 * gets swapped (`--config /etc/cfg/..data/config.yaml`), a symlink to a file in another
 * directory that is edited there, a watched directory deleted and mounted again. It costs one stat
 * every few seconds, and a change the directory watch already reported is not reported again. If
 * the directory cannot be watched at all, the poll alone remains, at a faster pace. (Not
 * fs.watchFile: it takes its baseline at its first asynchronous stat, so a change made right after
 * the watch starts is never reported, and its interval is fixed process-wide by its first caller.)
 *
 * File events and SIGHUP (through trigger) share one debounce timer: an editor's save or a
 * config-management run is several events, and a signal sent for the same edit must not cause a
 * second reload.
 */
import { stat, statSync, watch } from 'node:fs';
import type { FSWatcher, Stats } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import type { Logger } from '../observability/logger.js';

export interface ConfigWatch {
  /** Asks for a reload through the same debounce as file changes (serve routes SIGHUP here). */
  trigger(why: string): void;
  close(): void;
}

export interface ConfigWatchTiming {
  /** Quiet time after the last event before the reload. */
  readonly debounceMs?: number;
  /** A file that keeps changing still gets reloaded this long after its first change. */
  readonly maxDelayMs?: number;
  /** The backstop poll's interval while the directory watch works. */
  readonly backstopPollMs?: number;
  /** The poll's interval once the directory watch has failed. */
  readonly fallbackPollMs?: number;
}

/** The symlink kubelet's atomic writer swaps on every ConfigMap or Secret update. */
const CONFIGMAP_DATA_LINK = '..data';

const DEFAULTS: Required<ConfigWatchTiming> = { debounceMs: 200, maxDelayMs: 2_000, backstopPollMs: 5_000, fallbackPollMs: 1_000 };

/** What a stat says about which file, with which content, the path leads to; zeros when there is none. */
interface FileIdentity {
  readonly dev: number;
  readonly ino: number;
  readonly size: number;
  readonly mtimeMs: number;
  readonly ctimeMs: number;
}

const NO_FILE: FileIdentity = { dev: 0, ino: 0, size: 0, mtimeMs: 0, ctimeMs: 0 };

function identityOf(stats: Stats): FileIdentity {
  return { dev: stats.dev, ino: stats.ino, size: stats.size, mtimeMs: stats.mtimeMs, ctimeMs: stats.ctimeMs };
}

function currentIdentity(path: string): FileIdentity {
  try {
    const stats = statSync(path, { throwIfNoEntry: false });
    return stats === undefined ? NO_FILE : identityOf(stats);
  } catch {
    // EACCES, ELOOP…: the reload will say what is wrong; here it only counts as "no file".
    return NO_FILE;
  }
}

function sameIdentity(a: FileIdentity, b: FileIdentity): boolean {
  return a.dev === b.dev && a.ino === b.ino && a.size === b.size && a.mtimeMs === b.mtimeMs && a.ctimeMs === b.ctimeMs;
}

export function watchConfig(path: string, onChange: (why: string) => void, logger: Logger, timing: ConfigWatchTiming = {}): ConfigWatch {
  const { debounceMs, maxDelayMs, backstopPollMs, fallbackPollMs } = { ...DEFAULTS, ...timing };
  const file = resolve(path);
  const directory = dirname(file);
  const name = basename(file);
  let closed = false;

  // --- the debounce: one timer for every source of "reload, please"
  let timer: NodeJS.Timeout | undefined;
  let pendingSince: number | undefined;
  const reasons = new Set<string>();
  /** The file as it was when a reload was last asked for; the poll reports only a difference from it. */
  let reported = currentIdentity(file);

  const fire = (): void => {
    timer = undefined;
    pendingSince = undefined;
    const why = [...reasons].join(', ');
    reasons.clear();
    reported = currentIdentity(file);
    try {
      onChange(why);
    } catch (error) {
      logger.error({ err: error, why }, 'configuration reload could not be started');
    }
  };

  const trigger = (why: string): void => {
    if (closed) return;
    reasons.add(why);
    const now = Date.now();
    pendingSince ??= now;
    clearTimeout(timer);
    timer = setTimeout(fire, Math.max(0, Math.min(debounceMs, pendingSince + maxDelayMs - now)));
    timer.unref();
  };

  // --- the poll: backstop, or the only watch left
  let pollTimer: NodeJS.Timeout | undefined;
  let statInFlight = false;
  const pollOnce = (): void => {
    // A stat that hangs (a dead network mount) must not pile up more behind it.
    if (statInFlight) return;
    statInFlight = true;
    stat(file, (error, stats) => {
      statInFlight = false;
      // While a reload is already pending the file will be read anyway: the poll has nothing to add.
      if (closed || timer !== undefined) return;
      if (!sameIdentity(error ? NO_FILE : identityOf(stats), reported)) trigger('file changed (poll)');
    });
  };
  const poll = (intervalMs: number): void => {
    clearInterval(pollTimer);
    pollTimer = setInterval(pollOnce, intervalMs);
    pollTimer.unref();
  };

  // --- the directory watch
  let directoryWatch: FSWatcher | undefined;
  let pollingOnly = false;
  const fallBackToPolling = (error: unknown): void => {
    if (closed || pollingOnly) return;
    pollingOnly = true;
    directoryWatch?.close();
    directoryWatch = undefined;
    poll(fallbackPollMs);
    logger.warn(
      { err: error, directory, pollMs: fallbackPollMs },
      'cannot watch the configuration directory; polling the configuration file instead (SIGHUP still reloads)',
    );
  };
  try {
    directoryWatch = watch(directory, { persistent: false }, (_event, filename) => {
      if (filename === null || filename === name || filename === CONFIGMAP_DATA_LINK) trigger('file changed');
    });
    directoryWatch.on('error', fallBackToPolling);
    poll(backstopPollMs);
  } catch (error) {
    // Thrown at once rather than emitted: a missing directory, or no inotify watches left (ENOSPC).
    fallBackToPolling(error);
  }

  return {
    trigger,
    close() {
      closed = true;
      clearTimeout(timer);
      directoryWatch?.close();
      directoryWatch = undefined;
      clearInterval(pollTimer);
    },
  };
}
