/**
 * Notices every way a configuration file, or a file it names, is changed, and asks for one reload
 * per change.
 *
 * The files a configuration names (certificates, keys, CA bundles, JWKS files, secrets; see
 * named-files.ts) are renewed in place by cert-manager, Vault agents and SPIRE, usually by the
 * same `..data` swap as a ConfigMap. They are watched exactly as the configuration file is: the
 * directory of each, the `..data` link, and the backstop poll. Which files that is comes from
 * `namedFiles`, asked again after every reload request, so it follows the newest configuration on
 * disk, even one a reload refused (a key file it names that is not there yet is watched for, and
 * its arrival retries the reload).
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
import { basename, dirname, join, resolve } from 'node:path';
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
  /** The backstop poll's interval while the directory watches work. */
  readonly backstopPollMs?: number;
  /** The poll's interval once a directory watch has failed. */
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

/** A watched directory: the names in it that matter, and its watch (undefined once it failed). */
interface WatchedDirectory {
  readonly names: Set<string>;
  watcher: FSWatcher | undefined;
}

/**
 * Watches `path` and the files `namedFiles` returns (absolute, or relative to the working
 * directory). `namedFiles` is asked at start and after each reload request; when it throws, the
 * files watched so far stay watched.
 */
export function watchConfig(
  path: string,
  onChange: (why: string) => void,
  logger: Logger,
  timing: ConfigWatchTiming = {},
  namedFiles: () => readonly string[] = () => [],
): ConfigWatch {
  const { debounceMs, maxDelayMs, backstopPollMs, fallbackPollMs } = { ...DEFAULTS, ...timing };
  const configFile = resolve(path);
  const configDirectory = dirname(configFile);
  let closed = false;
  /** Each watched file as it was when a reload was last asked for; the poll reports only a difference from it. */
  const reported = new Map<string, FileIdentity>();
  const directories = new Map<string, WatchedDirectory>();
  /** Directories whose failed watch was already logged: a retry that fails again says nothing new. */
  const warned = new Set<string>();
  const changed = (file: string, how = ''): string => (file === configFile ? `file changed${how}` : `file changed${how}: ${file}`);

  // --- the debounce: one timer for every source of "reload, please"
  let timer: NodeJS.Timeout | undefined;
  let pendingSince: number | undefined;
  const reasons = new Set<string>();

  const fire = (): void => {
    timer = undefined;
    pendingSince = undefined;
    const why = [...reasons].join(', ');
    reasons.clear();
    for (const file of reported.keys()) reported.set(file, currentIdentity(file));
    try {
      onChange(why);
    } catch (error) {
      logger.error({ err: error, why }, 'configuration reload could not be started');
    }
    follow();
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

  // --- the poll: backstop, or the only watch left for a directory that cannot be watched
  let pollTimer: NodeJS.Timeout | undefined;
  let pollIntervalMs: number | undefined;
  let statsInFlight = 0;
  const pollOnce = (): void => {
    // Stats that hang (a dead network mount) must not pile up more behind them.
    if (statsInFlight > 0) return;
    for (const [file, known] of reported) {
      statsInFlight++;
      stat(file, (error, stats) => {
        statsInFlight--;
        // While a reload is already pending the files will be read anyway: the poll has nothing to add.
        if (closed || timer !== undefined || reported.get(file) !== known) return;
        if (!sameIdentity(error ? NO_FILE : identityOf(stats), known)) trigger(changed(file, ' (poll)'));
      });
    }
  };
  const pace = (): void => {
    const intervalMs = [...directories.values()].some((directory) => directory.watcher === undefined) ? fallbackPollMs : backstopPollMs;
    if (intervalMs === pollIntervalMs) return;
    pollIntervalMs = intervalMs;
    clearInterval(pollTimer);
    pollTimer = setInterval(pollOnce, intervalMs);
    pollTimer.unref();
  };

  // --- the directory watches
  const fallBackToPolling = (directory: string, error: unknown): void => {
    const watched = directories.get(directory);
    if (closed || watched === undefined) return;
    watched.watcher?.close();
    watched.watcher = undefined;
    pace();
    if (warned.has(directory)) return;
    warned.add(directory);
    if (directory === configDirectory) {
      logger.warn(
        { err: error, directory, pollMs: fallbackPollMs },
        'cannot watch the configuration directory; polling the configuration file instead (SIGHUP still reloads)',
      );
    } else {
      logger.warn({ err: error, directory, pollMs: fallbackPollMs }, 'cannot watch the directory of a file the configuration names; polling the file instead');
    }
  };
  const watchDirectory = (directory: string, watched: WatchedDirectory): void => {
    try {
      watched.watcher = watch(directory, { persistent: false }, (_event, filename) => {
        if (filename === null || filename === CONFIGMAP_DATA_LINK) {
          // Which file changed is not said: every watched file in the directory may have.
          for (const name of watched.names) trigger(changed(join(directory, name)));
        } else if (watched.names.has(filename)) {
          trigger(changed(join(directory, filename)));
        }
      });
      watched.watcher.on('error', (error) => fallBackToPolling(directory, error));
    } catch (error) {
      // Thrown at once rather than emitted: a missing directory, or no inotify watches left (ENOSPC).
      fallBackToPolling(directory, error);
    }
  };

  /** Watches the configuration file and the files it names now; stops watching those it no longer names. */
  const follow = (): void => {
    if (closed) return;
    let files: readonly string[];
    try {
      files = [configFile, ...namedFiles().map((file) => resolve(file))];
    } catch (error) {
      logger.debug({ err: error }, 'cannot tell which files the configuration names; watching the same files as before');
      return;
    }
    const wanted = new Map<string, Set<string>>();
    for (const file of files) {
      const names = wanted.get(dirname(file)) ?? new Set<string>();
      names.add(basename(file));
      wanted.set(dirname(file), names);
      if (!reported.has(file)) reported.set(file, currentIdentity(file));
    }
    for (const file of reported.keys()) if (!files.includes(file)) reported.delete(file);
    for (const [directory, watched] of directories) {
      if (wanted.has(directory)) continue;
      watched.watcher?.close();
      directories.delete(directory);
    }
    for (const [directory, names] of wanted) {
      let watched = directories.get(directory);
      if (watched === undefined) {
        watched = { names, watcher: undefined };
        directories.set(directory, watched);
        watchDirectory(directory, watched);
      } else {
        watched.names.clear();
        for (const name of names) watched.names.add(name);
        // A directory that could not be watched (not mounted yet, deleted and mounted again) gets another try.
        if (watched.watcher === undefined) watchDirectory(directory, watched);
      }
    }
    pace();
  };
  follow();

  return {
    trigger,
    close() {
      closed = true;
      clearTimeout(timer);
      for (const watched of directories.values()) watched.watcher?.close();
      directories.clear();
      clearInterval(pollTimer);
    },
  };
}
