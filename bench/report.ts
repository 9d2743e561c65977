/**
 * Results → the markdown table (ratios to bare Envoy, to OPA-Envoy and to the Go ext_authz floor)
 * and a hand-written SVG bar chart of the latency percentiles. No dependency: the chart is a few
 * rects and texts.
 */
import { median } from './measure.js';
import type { RateRound, SaturationRound, ScenarioMeasurement } from './measure.js';

export interface ScenarioResult {
  readonly id: string;
  readonly label: string;
  readonly authorizer: string;
  readonly load: readonly number[];
  readonly measurement: ScenarioMeasurement;
  readonly extra?: Readonly<Record<string, number>>;
  /** The scenario this one differs from in one respect (scenarios.ts `comparedWith`). */
  readonly comparedWith?: string;
}

export interface ScalingResults {
  rules: Array<{ rules: number; p50: number; p90: number; p99: number; rssKb: number | undefined }>;
  tokens: Array<{ tokens: number; rssKb: number | undefined; hwmKb: number | undefined; seconds: number }>;
  workers: { supported: boolean; note: string };
}

/** ghz straight at an authorizer's gRPC port (no Envoy). */
export interface DirectResult {
  readonly id: string;
  readonly authorizer: string;
  readonly rounds: ReadonlyArray<{ readonly rps: number; readonly p50: number; readonly p99: number; readonly cpuUsPerCheck: number }>;
  readonly rps: number;
  readonly p50: number;
  readonly p99: number;
  readonly cpuUsPerCheck: number;
  /** The direct scenario this one differs from in one respect. */
  readonly comparedWith?: string;
}

export interface BenchResults {
  readonly schema: 1;
  readonly date: string;
  readonly mode: 'full' | 'quick';
  readonly label: string | null;
  readonly machine: {
    readonly host: string;
    readonly cpuModel: string;
    readonly cores: number;
    readonly ramMb: number;
    readonly kernel: string;
    readonly node: string;
    readonly envoy: string;
    readonly opaEnvoy: string;
    readonly spicedb: string;
    readonly h2load: string;
    readonly vegeta: string;
    readonly ghz: string;
  };
  readonly method: Readonly<Record<string, string>>;
  readonly scenarios: readonly ScenarioResult[];
  readonly direct: readonly DirectResult[];
  readonly scaling: ScalingResults;
  readonly profiles: Readonly<Record<string, unknown>>;
  readonly failures: readonly string[];
  readonly wallSeconds: number;
  /**
   * --compare's pairs, [baseline, variant], in the order named: a scenario may be the variant of
   * more than one (`comparedWith` holds only the last).
   */
  readonly comparisons?: ReadonlyArray<readonly [string, string]>;
}

const n = (value: number | undefined, digits: number): string => (value === undefined || !Number.isFinite(value) ? '–' : value.toFixed(digits));
const int = (value: number | undefined): string => (value === undefined || !Number.isFinite(value) ? '–' : Math.round(value).toLocaleString('en'));

export function renderMarkdown(results: BenchResults, svgName: string): string {
  const byId = new Map(results.scenarios.map((s) => [s.id, s]));
  const bare = byId.get('bare')?.measurement;
  const opa = byId.get('opa_envoy')?.measurement;
  const floor = byId.get('floor_node')?.measurement;
  const floorGo = byId.get('floor_go')?.measurement;
  const m = results.machine;
  const lines: string[] = [];
  lines.push(`### ${results.mode === 'full' ? 'Full' : 'Quick'} run ${results.date.slice(0, 16).replace('T', ' ')} UTC on ${m.host}${results.label ? ` (${results.label})` : ''}`);
  lines.push('');
  lines.push(`${m.cpuModel}, ${m.cores} cores, ${Math.round(m.ramMb / 1024)} GiB; Node ${m.node}, Envoy ${m.envoy}, OPA-Envoy ${m.opaEnvoy}, SpiceDB ${m.spicedb}, h2load ${m.h2load}, vegeta ${m.vegeta}. ${results.method.cores ?? ''}`);
  lines.push('');
  lines.push('| Scenario | Throughput at saturation (req/s) | × bare Envoy | × OPA-Envoy | × Go floor | p50 ms | p90 ms | p99 ms | p99 added over bare (ms) | p99 added over the Node floor (ms) | p99 added over the Go floor (ms) | Authorizer CPU (cores) saturated / at 1k req/s | Authorizer CPU µs per request | Authorizer RSS (MB) |');
  lines.push('|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|');
  for (const s of results.scenarios) {
    const x = s.measurement;
    const hasRps = x.saturation.length > 0;
    lines.push(
      [
        `${s.label} \`${s.id}\``,
        hasRps ? int(x.rps) : 'n/a',
        hasRps && bare ? n(x.rps / bare.rps, 2) : '–',
        hasRps && opa ? n(x.rps / opa.rps, 2) : '–',
        hasRps && floorGo && floorGo.saturation.length > 0 ? n(x.rps / floorGo.rps, 2) : '–',
        n(x.p50, 3),
        n(x.p90, 3),
        n(x.p99, 3),
        bare ? n(x.p99 - bare.p99, 3) : '–',
        floor && s.authorizer.startsWith('jwtauth-sidecar') ? n(x.p99 - floor.p99, 3) : '–',
        floorGo && s.id !== 'floor_go' && s.id !== 'bare' ? n(x.p99 - floorGo.p99, 3) : '–',
        `${n(x.authorizerCores.saturation, 2)} / ${n(x.authorizerCores.atOfferedRate, 2)}`,
        hasRps ? n(((x.authorizerCores.saturation ?? Number.NaN) / x.rps) * 1e6, 0) : '–',
        n((x.rssKb.authorizer ?? Number.NaN) / 1024, 1),
      ].join(' | ').replace(/^/, '| ').concat(' |'),
    );
  }
  lines.push('');
  const capped = results.scenarios.filter((s) => s.measurement.offeredRps !== 1000).map((s) => `\`${s.id}\` ${s.measurement.offeredRps} req/s`);
  lines.push('Latency columns: 1,000 req/s offered by vegeta, open-loop and evenly spaced' + (capped.length ? `, except where that is more than a quarter of a scenario's own saturation throughput: then that quarter (${capped.join(', ')})` : '') + '. "Authorizer" is the ext_authz server (OPA-Envoy or the sidecar; Envoy itself for jwt_authn, shown as –). jwt_authn runs inside Envoy on core 0 and gets no second core. `floor_node` is the sidecar\'s own gRPC listener (node:http2) answering OK without deciding: what the round trip costs a Node.js ext_authz server here. `floor_go` is the same in Go (grpc-go, go-control-plane): what a compiled ext_authz server pays; "× Go floor" is the share of that floor\'s throughput a scenario keeps.');
  const extras = results.scenarios.filter((s) => s.extra);
  if (extras.length > 0) {
    lines.push('');
    for (const s of extras) lines.push(`- \`${s.id}\`: ${Object.entries(s.extra ?? {}).map(([k, v]) => `${k} ${int(v)}`).join(', ')}`);
  }
  const pairs = results.comparisons ?? results.scenarios.flatMap((s) => (s.comparedWith === undefined ? [] : [[s.comparedWith, s.id] as const]));
  for (const [baselineId, variantId] of pairs) {
    const baseline = byId.get(baselineId);
    const variant = byId.get(variantId);
    if (baseline && variant) lines.push('', ...sideBySide(baseline, variant));
  }
  if (results.direct.length > 0) {
    lines.push('');
    lines.push('**Direct Check calls** (ghz → the authorizer\'s gRPC port, no Envoy; 32 in flight on one connection, or one per worker where a row says so; the same CheckRequest Envoy sends with the deployed filter settings):');
    lines.push('');
    lines.push('| Authorizer | Checks/s | p50 ms | p99 ms | CPU µs per Check |');
    lines.push('|---|--:|--:|--:|--:|');
    for (const d of results.direct) lines.push(`| ${d.authorizer} \`${d.id}\` | ${int(d.rps)} | ${n(d.p50, 3)} | ${n(d.p99, 3)} | ${n(d.cpuUsPerCheck, 0)} |`);
    const directById = new Map(results.direct.map((d) => [d.id, d]));
    for (const d of results.direct) {
      const baseline = d.comparedWith === undefined ? undefined : directById.get(d.comparedWith);
      if (baseline) lines.push('', directDifference(baseline, d));
    }
  }
  if (results.scaling.rules.length > 0 || results.scaling.tokens.length > 0) {
    lines.push('');
    lines.push('**Scaling.**');
    lines.push('');
    if (results.scaling.rules.length > 0) {
      lines.push('| Inbound rules | p50 ms | p90 ms | p99 ms | RSS (MB) |');
      lines.push('|--:|--:|--:|--:|--:|');
      for (const r of results.scaling.rules) lines.push(`| ${int(r.rules)} | ${n(r.p50, 3)} | ${n(r.p90, 3)} | ${n(r.p99, 3)} | ${n((r.rssKb ?? Number.NaN) / 1024, 1)} |`);
      lines.push('');
    }
    if (results.scaling.tokens.length > 0) {
      lines.push('| Distinct tokens seen | RSS (MB) | Peak RSS (MB) |');
      lines.push('|--:|--:|--:|');
      for (const t of results.scaling.tokens) lines.push(`| ${int(t.tokens)} | ${n((t.rssKb ?? Number.NaN) / 1024, 1)} | ${n((t.hwmKb ?? Number.NaN) / 1024, 1)} |`);
      lines.push('');
    }
    lines.push(`Workers: ${results.scaling.workers.note}`);
  }
  if (results.failures.length > 0) {
    lines.push('');
    lines.push(`**Failed scenarios:** ${results.failures.join('; ')}`);
  }
  lines.push('');
  lines.push(`![latency percentiles](${svgName})`);
  return `${lines.join('\n')}\n`;
}

const signed = (value: number, digits: number): string => (Number.isFinite(value) ? `${value >= 0 ? '+' : ''}${value.toFixed(digits)}` : '–');

/** A figure of one round; NaN where the round lacks it. */
interface RoundFigure {
  readonly name: string;
  readonly digits: number;
  readonly saturation?: (round: SaturationRound) => number;
  readonly rate?: (round: RateRound) => number;
}

const perRequestUs = (cores: number | undefined, rps: number): number => ((cores ?? Number.NaN) / rps) * 1e6;
const ROUND_FIGURES: readonly RoundFigure[] = [
  { name: 'authorizer CPU µs per request, at saturation', digits: 1, saturation: (r) => perRequestUs(r.cpu.authorizer, r.rps) },
  { name: 'authorizer CPU µs per request, at the offered rate', digits: 1, rate: (r) => perRequestUs(r.cpu.authorizer, r.achievedRps) },
  { name: 'Envoy CPU µs per request, at saturation', digits: 1, saturation: (r) => perRequestUs(r.cpu.envoy, r.rps) },
  { name: 'req/s at saturation', digits: 0, saturation: (r) => r.rps },
  { name: 'p50 ms at the offered rate', digits: 3, rate: (r) => r.p50 },
  { name: 'p99 ms at the offered rate', digits: 3, rate: (r) => r.p99 },
];

function roundValues(m: ScenarioMeasurement, figure: RoundFigure): number[] {
  if (figure.saturation) return m.saturation.map(figure.saturation);
  return figure.rate ? m.rate.map(figure.rate) : [];
}

/**
 * Two scenarios that differ in one respect, figure by figure. The difference is the median of the
 * per-round differences: rounds with the same index ran one after the other (`alternatesRounds`),
 * so each pair met the same load from outside the benchmark.
 */
function sideBySide(baseline: ScenarioResult, scenario: ScenarioResult): string[] {
  const lines = [
    `**\`${scenario.id}\` against \`${baseline.id}\`** (medians of rounds; difference = median of the differences between their rounds paired in order, which took turns in a group whose scenarios alternate and under --compare, and otherwise ran one scenario after the other; spread = their min–max):`,
    '',
    `| Figure | \`${baseline.id}\` | \`${scenario.id}\` | difference | spread | per round |`,
    '|---|--:|--:|--:|--:|---|',
  ];
  for (const figure of ROUND_FIGURES) {
    const base = roundValues(baseline.measurement, figure);
    const other = roundValues(scenario.measurement, figure);
    if (base.length === 0 && other.length === 0) continue;
    const differences = base.length === other.length ? other.map((value, i) => value - (base[i] as number)) : [];
    const perRound = differences.map((d) => signed(d, figure.digits)).join(', ');
    const finite = differences.filter((d) => Number.isFinite(d));
    const spread = finite.length > 0 ? `${signed(Math.min(...finite), figure.digits)} … ${signed(Math.max(...finite), figure.digits)}` : '–';
    lines.push(`| ${figure.name} | ${n(median(base), figure.digits)} | ${n(median(other), figure.digits)} | ${signed(median(differences), figure.digits)} | ${spread} | ${perRound || 'rounds do not pair'} |`);
  }
  return lines;
}

/** CPU per Check of two direct scenarios, as the median of per-round differences (rounds in turns). */
function directDifference(baseline: DirectResult, result: DirectResult): string {
  const differences = baseline.rounds.length === result.rounds.length ? result.rounds.map((round, i) => round.cpuUsPerCheck - (baseline.rounds[i]?.cpuUsPerCheck ?? Number.NaN)) : [];
  return `\`${result.id}\` against \`${baseline.id}\`: ${signed(median(differences), 0)} µs CPU per Check (median of the per-round differences: ${differences.map((d) => signed(d, 0)).join(', ') || 'rounds do not pair'}).`;
}

const escapeXml = (text: string): string => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** Grouped horizontal bars (p50, p90, p99 per scenario) on a log-scaled millisecond axis. */
export function renderSvg(results: BenchResults): string {
  const rows = results.scenarios.filter((s) => Number.isFinite(s.measurement.p99));
  const colors = { p50: '#4c78a8', p90: '#f58518', p99: '#e45756' } as const;
  const left = 330;
  const plotWidth = 520;
  const rowHeight = 46;
  const top = 56;
  const height = top + rows.length * rowHeight + 50;
  const width = left + plotWidth + 40;
  const values = rows.flatMap((r) => [r.measurement.p50, r.measurement.p99]).filter((v) => v > 0);
  // Log axis: the uncached SpiceDB path is an order of magnitude slower than the cached ones.
  const lo = Math.pow(10, Math.floor(Math.log10(Math.min(...values, 0.1))));
  const hi = Math.pow(10, Math.ceil(Math.log10(Math.max(...values, 1))));
  const x = (ms: number): number => left + (plotWidth * (Math.log10(Math.max(ms, lo)) - Math.log10(lo))) / (Math.log10(hi) - Math.log10(lo));
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif" font-size="12">`);
  out.push(`<rect width="${width}" height="${height}" fill="#fff"/>`);
  out.push(`<text x="${width / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">Latency at 1,000 req/s through Envoy (ms, log scale) — ${escapeXml(results.machine.host)} ${results.date.slice(0, 10)}</text>`);
  let legendX = left;
  for (const [name, color] of Object.entries(colors)) {
    out.push(`<rect x="${legendX}" y="34" width="12" height="12" fill="${color}"/><text x="${legendX + 16}" y="44">${name}</text>`);
    legendX += 70;
  }
  for (let decade = lo; decade <= hi * 1.0001; decade *= 10) {
    const gx = x(decade);
    out.push(`<line x1="${gx}" y1="${top - 4}" x2="${gx}" y2="${top + rows.length * rowHeight}" stroke="#ddd"/>`);
    out.push(`<text x="${gx}" y="${top + rows.length * rowHeight + 16}" text-anchor="middle" fill="#555">${decade >= 1 ? decade.toFixed(0) : decade.toPrecision(1)}</text>`);
  }
  rows.forEach((row, i) => {
    const y = top + i * rowHeight;
    out.push(`<text x="${left - 8}" y="${y + 16}" text-anchor="end">${escapeXml(row.id)}</text>`);
    out.push(`<text x="${left - 8}" y="${y + 30}" text-anchor="end" fill="#777" font-size="10">${escapeXml(row.authorizer)}</text>`);
    (['p50', 'p90', 'p99'] as const).forEach((p, j) => {
      const value = row.measurement[p];
      const by = y + 4 + j * 12;
      out.push(`<rect x="${left}" y="${by}" width="${Math.max(1, x(value) - left).toFixed(1)}" height="10" fill="${colors[p]}"/>`);
      out.push(`<text x="${(x(value) + 4).toFixed(1)}" y="${by + 9}" font-size="10">${value.toFixed(value < 10 ? 3 : 1)}</text>`);
    });
  });
  out.push(`<text x="${left + plotWidth / 2}" y="${height - 12}" text-anchor="middle" fill="#555">milliseconds (vegeta, per request, median of rounds)</text>`);
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
