/**
 * Process and machine accounting from /proc: CPU time and RSS of one process (with its children), and the whole
 * machine's busy time. The machine figure is what lets a run say how much CPU something *other*
 * than the benchmark used while it ran (other engineers test on this machine concurrently).
 */
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';

/** Linux reports utime/stime in clock ticks; USER_HZ is 100 on every mainstream kernel build. */
export const TICKS_PER_SECOND = 100;

export interface ProcSample {
  /** utime + stime in ticks. */
  readonly cpuTicks: number;
  readonly rssKb: number;
  /** Peak RSS so far (VmHWM). */
  readonly hwmKb: number;
  readonly threads: number;
}

function readStat(pid: number): { ppid: number; cpuTicks: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state), so field N is fields[N - 3].
    return { ppid: Number(fields[1]), cpuTicks: Number(fields[11]) + Number(fields[12]) };
  } catch {
    return undefined;
  }
}

/** Every process's children, by parent pid: one pass over /proc. */
function childrenByParent(): Map<number, number[]> {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const ppid = readStat(Number(entry))?.ppid;
    if (ppid !== undefined) children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
  }
  return children;
}

/** The processes `pid` started (worker mode's workers, forked by the sidecar's primary). */
export function childProcesses(pid: number): number[] {
  return childrenByParent().get(pid) ?? [];
}

/** `pid` and every process below it. */
function processTree(pid: number): number[] {
  const children = childrenByParent();
  const tree = [pid];
  for (let i = 0; i < tree.length; i++) tree.push(...(children.get(tree[i]!) ?? []));
  return tree;
}

/**
 * CPU time, RSS and threads of `pid` and its descendants together: a sidecar in worker mode is a
 * primary and its workers, and what a pod pays is their sum. Peak RSS (VmHWM) is summed too, which
 * overstates the peak when the processes peaked at different times. Undefined once `pid` is gone.
 */
export function sampleProcess(pid: number): ProcSample | undefined {
  let total: { cpuTicks: number; rssKb: number; hwmKb: number; threads: number } | undefined;
  for (const member of processTree(pid)) {
    const stat = readStat(member);
    let status: string;
    try {
      status = readFileSync(`/proc/${member}/status`, 'utf8');
    } catch {
      continue; // ended while we looked
    }
    if (stat === undefined) continue;
    const kb = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? 0);
    total ??= { cpuTicks: 0, rssKb: 0, hwmKb: 0, threads: 0 };
    total.cpuTicks += stat.cpuTicks;
    total.rssKb += kb('VmRSS');
    total.hwmKb += kb('VmHWM');
    total.threads += kb('Threads');
  }
  return total;
}

export interface MachineCpu {
  readonly busy: number;
  readonly total: number;
}

/** Aggregate CPU line of /proc/stat, in ticks: busy excludes idle and iowait. */
export function sampleMachine(): MachineCpu {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '';
  const values = line.trim().split(/\s+/).slice(1).map(Number);
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = values;
  const busy = user + nice + system + irq + softirq + steal;
  return { busy, total: busy + idle + iowait };
}

export function loadAverage(): [number, number, number] {
  const [a = 0, b = 0, c = 0] = readFileSync('/proc/loadavg', 'utf8').split(' ').map(Number);
  return [a, b, c];
}

/** CPU cores used between two samples of one process over `seconds`. */
export function coresUsed(before: ProcSample | undefined, after: ProcSample | undefined, seconds: number): number | undefined {
  if (!before || !after || seconds <= 0) return undefined;
  return (after.cpuTicks - before.cpuTicks) / TICKS_PER_SECOND / seconds;
}

export interface ChildRun {
  readonly code: number | null;
  /** stdout and stderr interleaved. */
  readonly text: string;
  /** CPU seconds the child (and its children) used. */
  readonly cpuSeconds: number;
}

/**
 * Runs a command and reports the CPU it used. A shell parent reaps the command and then reads its
 * own cutime/cstime, which counts the command's CPU time without racing its exit.
 */
export function runMeasured(command: readonly string[]): Promise<ChildRun> {
  const script = '"$@"; rc=$?; set -- $(sed "s/.*) //" /proc/$$/stat); echo "BENCH_CHILD_TICKS ${14} ${15}"; exit $rc';
  return new Promise((resolve) => {
    const child = spawn('bash', ['-c', script, 'measured', ...command], { stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    child.stdout.on('data', (chunk: Buffer) => (text += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (text += chunk.toString()));
    child.once('exit', (code) => {
      const ticks = /BENCH_CHILD_TICKS (\d+) (\d+)/.exec(text);
      const cpuSeconds = ticks ? (Number(ticks[1]) + Number(ticks[2])) / TICKS_PER_SECOND : Number.NaN;
      resolve({ code, text: text.replace(/BENCH_CHILD_TICKS.*\n?/, ''), cpuSeconds });
    });
  });
}
