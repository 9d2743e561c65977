/**
 * Reads a V8 .cpuprofile (`node --cpu-prof`) and lists where the time went: self time per
 * function, and total time per source file, so a report can say what the hot path spends on.
 * Usage on its own: node dist/bench/profile.js FILE.cpuprofile
 */
import { existsSync, readFileSync } from 'node:fs';

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
}
interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
  readonly children?: readonly number[];
}
interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

export interface ProfileSummary {
  readonly file: string;
  readonly totalMs: number;
  readonly idlePercent: number;
  readonly topSelf: ReadonlyArray<{ readonly fn: string; readonly percent: number }>;
  readonly byFile: ReadonlyArray<{ readonly file: string; readonly percent: number }>;
  /** Time with the function anywhere on the stack (counted once per sample), as % of busy time. */
  readonly topInclusive: ReadonlyArray<{ readonly fn: string; readonly percentOfBusy: number }>;
}

function shortUrl(url: string): string {
  if (!url) return '(native)';
  const at = url.search(/\/(dist|node_modules)\//);
  return at >= 0 ? url.slice(at + 1) : url.replace(/^file:\/\//, '');
}

export function summarizeProfile(file: string, top = 25): ProfileSummary | { readonly file: string; readonly missing: true } {
  if (!existsSync(file)) return { file, missing: true };
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  for (const node of profile.nodes) byId.set(node.id, node);
  const self = new Map<number, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0;
    total += dt;
    self.set(id, (self.get(id) ?? 0) + dt);
  });
  const perFn = new Map<string, number>();
  const perFile = new Map<string, number>();
  let idle = 0;
  for (const [id, us] of self) {
    const frame = byId.get(id)?.callFrame;
    if (!frame) continue;
    if (frame.functionName === '(idle)') idle += us;
    const key = `${frame.functionName || '(anonymous)'} ${shortUrl(frame.url)}:${frame.lineNumber + 1}`;
    perFn.set(key, (perFn.get(key) ?? 0) + us);
    const f = shortUrl(frame.url).replace(/^(node_modules\/(@[^/]+\/)?[^/]+).*/, '$1');
    perFile.set(f, (perFile.get(f) ?? 0) + us);
  }
  // Inclusive: walk each sampled node up to the root once, crediting every distinct function.
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const keyOf = (frame: CallFrame): string => `${frame.functionName || '(anonymous)'} ${shortUrl(frame.url)}:${frame.lineNumber + 1}`;
  const inclusive = new Map<string, number>();
  for (const [id, us] of self) {
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const frame = byId.get(at)?.callFrame;
      if (!frame) break;
      const key = keyOf(frame);
      if (seen.has(key)) continue;
      seen.add(key);
      inclusive.set(key, (inclusive.get(key) ?? 0) + us);
    }
  }
  const busy = Math.max(1, total - idle);
  const pct = (us: number): number => Math.round((1000 * us) / Math.max(1, total)) / 10;
  const sorted = (m: Map<string, number>): Array<[string, number]> => [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, top);
  return {
    file,
    totalMs: Math.round(total / 1000),
    idlePercent: pct(idle),
    topSelf: sorted(perFn).map(([fn, us]) => ({ fn, percent: pct(us) })),
    byFile: sorted(perFile).map(([f, us]) => ({ file: f, percent: pct(us) })),
    topInclusive: [...inclusive.entries()]
      .filter(([key]) => !key.startsWith('(root)') && !key.startsWith('(idle)'))
      .sort((a, b) => b[1] - a[1])
      .slice(0, top * 2)
      .map(([fn, us]) => ({ fn, percentOfBusy: Math.round((1000 * us) / busy) / 10 })),
  };
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/^.*\/dist\//, '/dist/'))) {
  const target = process.argv[2];
  if (!target) {
    process.stderr.write('usage: node dist/bench/profile.js FILE.cpuprofile\n');
    process.exit(2);
  }
  process.stdout.write(`${JSON.stringify(summarizeProfile(target, Number(process.argv[3] ?? 30)), null, 2)}\n`);
}
