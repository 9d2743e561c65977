/**
 * The PromQL the repository ships, read from its files, in the form the query API can evaluate:
 * the Grafana dashboard's targets with its template variables filled in, and the alert rules with
 * their thresholds turned into `bool` comparisons.
 */
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';

const DASHBOARD_FILE = new URL('../../examples/grafana-dashboard.json', import.meta.url);
export const RULES_FILE = new URL('../../examples/prometheus-rules.yaml', import.meta.url);
const METRICS_DOC = new URL('../../docs/metrics.md', import.meta.url);

export interface NamedExpression {
  readonly name: string;
  readonly expression: string;
}

/** What Grafana puts in for the dashboard's variables: every job and instance, and a rate window. */
const DASHBOARD_VARIABLES: Readonly<Record<string, string>> = { $job: '.*', $instance: '.*', $__rate_interval: '1m' };

export function dashboardQueries(file: URL = DASHBOARD_FILE): NamedExpression[] {
  const dashboard = JSON.parse(readFileSync(file, 'utf8')) as { panels: { title: string; targets?: { refId: string; expr: string }[] }[] };
  return dashboard.panels.flatMap((panel) =>
    (panel.targets ?? []).map((target) => ({
      name: `panel "${panel.title}" ${target.refId}`,
      expression: Object.entries(DASHBOARD_VARIABLES).reduce((expression, [variable, value]) => expression.replaceAll(variable, value), target.expr),
    })),
  );
}

/**
 * The queries of a document's ```promql blocks: each `# comment` names the query after it, and an
 * indented line continues the query above.
 */
export function documentedQueries(file: URL = METRICS_DOC): NamedExpression[] {
  const queries: NamedExpression[] = [];
  for (const [, block = ''] of readFileSync(file, 'utf8').matchAll(/```promql\n([\s\S]*?)```/g)) {
    let name = '';
    for (const line of block.split('\n')) {
      if (line.trim() === '') continue;
      const last = queries.at(-1);
      if (line.startsWith('#')) name = line.slice(1).trim();
      else if (/^\s/.test(line) && last !== undefined) queries[queries.length - 1] = { ...last, expression: `${last.expression}\n${line}` };
      else queries.push({ name: `metrics.md "${name}"`, expression: line });
    }
  }
  return queries;
}

export interface AlertRule {
  readonly alert: string;
  readonly expr: string;
}

export function alertRules(file: URL = RULES_FILE): AlertRule[] {
  const document = parse(readFileSync(file, 'utf8')) as { groups: { rules: AlertRule[] }[] };
  return document.groups.flatMap((group) => group.rules);
}

const COMPARISONS = ['==', '!=', '>=', '<=', '>', '<'] as const;

/**
 * The rule's expression with `bool` after every comparison outside brackets and strings. A rule
 * returns series only while it fires; with `bool` it returns 0 or 1 for every series it watches,
 * so "returns data" then means "the series it needs exist", which is what a healthy sidecar can
 * show. Comparisons nested inside brackets would still filter, so a rule must not depend on one.
 */
export function withBoolComparisons(expression: string): string {
  let depth = 0;
  let quote: string | undefined;
  let out = '';
  for (let i = 0; i < expression.length; i++) {
    const char = expression[i] ?? '';
    if (quote !== undefined) {
      out += char;
      if (char === '\\') out += expression[++i] ?? '';
      else if (char === quote) quote = undefined;
      continue;
    }
    if (char === '"' || char === "'" || char === '`') quote = char;
    else if ('([{'.includes(char)) depth++;
    else if (')]}'.includes(char)) depth--;
    const comparison = depth === 0 ? COMPARISONS.find((operator) => expression.startsWith(operator, i)) : undefined;
    if (comparison === undefined || expression.startsWith('=~', i)) {
      out += char;
      continue;
    }
    out += `${comparison} bool`;
    i += comparison.length - 1;
  }
  return out;
}
