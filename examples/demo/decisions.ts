/**
 * The sidecars' decision log, as the demo reads it: each sidecar writes one JSON line per
 * decision on stderr (requestId, direction, rule, subject, tokenKind, checks, decision, reason;
 * never a token). The demo collects them from all three sidecars and prints them as a trace.
 */
export type SidecarName = 'gwadmin' | 'vmcontroller' | 'spicedb';

interface CheckFact {
  readonly resource: string;
  readonly permission: string;
  readonly subject: string;
  readonly result: string;
  readonly cached?: boolean;
}

export interface DecisionLine {
  /** Which sidecar decided. */
  readonly sidecar: SidecarName;
  /** Order of arrival across all sidecars. */
  readonly seq: number;
  readonly requestId: string | undefined;
  readonly direction: 'inbound' | 'outbound' | undefined;
  readonly method: string | undefined;
  readonly path: string | undefined;
  readonly authority: string | undefined;
  readonly rule: string | undefined;
  readonly subject: string | undefined;
  readonly subjectType: string | undefined;
  readonly issuer: string | undefined;
  readonly audience: string | undefined;
  readonly tokenKind: string | undefined;
  readonly checks: readonly CheckFact[];
  readonly decision: 'allow' | 'deny';
  readonly reason: string;
  readonly status: number | undefined;
  readonly detail: string | undefined;
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function checksOf(value: unknown): CheckFact[] {
  if (!Array.isArray(value)) return [];
  const out: CheckFact[] = [];
  for (const item of value as unknown[]) {
    if (typeof item !== 'object' || item === null) continue;
    const record = item as Record<string, unknown>;
    out.push({
      resource: str(record.resource) ?? '?',
      permission: str(record.permission) ?? '?',
      subject: str(record.subject) ?? '?',
      result: str(record.result) ?? '?',
      cached: record.cached === true,
    });
  }
  return out;
}

export class DecisionLog {
  private readonly lines: DecisionLine[] = [];
  private readonly waiters = new Set<() => void>();

  /** Feeds one output line of a sidecar; anything that is not a decision line is ignored. */
  accept(sidecar: SidecarName, raw: string): void {
    if (!raw.startsWith('{')) return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch {
      return;
    }
    if (typeof parsed !== 'object' || parsed === null) return;
    const record = parsed as Record<string, unknown>;
    if (record.msg !== 'decision') return;
    const decision = record.decision === 'allow' ? 'allow' : 'deny';
    const direction = record.direction === 'inbound' || record.direction === 'outbound' ? record.direction : undefined;
    this.lines.push({
      sidecar,
      seq: this.lines.length,
      requestId: str(record.requestId),
      direction,
      method: str(record.method),
      path: str(record.path),
      authority: str(record.authority),
      rule: str(record.rule),
      subject: str(record.subject),
      subjectType: str(record.subjectType),
      issuer: str(record.issuer),
      audience: str(record.audience),
      tokenKind: str(record.tokenKind),
      checks: checksOf(record.checks),
      decision,
      reason: str(record.reason) ?? '?',
      status: typeof record.status === 'number' ? record.status : undefined,
      detail: str(record.detail),
    });
    for (const wake of this.waiters) wake();
  }

  /** Every decision made for these request ids, in order of arrival. */
  all(): readonly DecisionLine[] {
    return this.lines;
  }

  forRequests(ids: readonly string[]): DecisionLine[] {
    const wanted = new Set(ids);
    return this.lines.filter((line) => line.requestId !== undefined && wanted.has(line.requestId));
  }

  /**
   * Waits until a decision matching `predicate` has been logged (log lines reach the demo shortly
   * after the response does), or `timeoutMs` passes.
   */
  async waitFor(predicate: (line: DecisionLine) => boolean, timeoutMs = 3000): Promise<DecisionLine | undefined> {
    const found = (): DecisionLine | undefined => this.lines.find(predicate);
    const now = found();
    if (now) return now;
    return new Promise((resolve) => {
      const done = (line: DecisionLine | undefined): void => {
        clearTimeout(timer);
        this.waiters.delete(wake);
        resolve(line);
      };
      const wake = (): void => {
        const line = found();
        if (line) done(line);
      };
      const timer = setTimeout(() => done(undefined), timeoutMs);
      this.waiters.add(wake);
    });
  }
}

/** Where a decision was made, as a hop: `─► gwadmin` (ingress) or `gwadmin ─► vmcontroller` (egress). */
function hopOf(line: DecisionLine): string {
  if (line.direction === 'outbound') return `${line.sidecar} ─► ${line.audience ?? line.authority ?? '?'}   (${line.sidecar}'s egress)`;
  return `─► ${line.sidecar}   (${line.sidecar}'s ingress)`;
}

function tokenOf(line: DecisionLine): string {
  const who = line.subject === undefined ? '' : ` ${line.subjectType ?? '?'}:${line.subject}`;
  const from = line.issuer === undefined ? '' : ` from ${line.issuer}`;
  switch (line.tokenKind) {
    case 'none':
      return 'no token';
    case 'service':
      return `no token → service token for ${line.subject ?? '?'}`;
    case 'on_behalf_of':
      return `no token, names a user in x-jwtauth-on-behalf-of${line.decision === 'allow' ? ` → on-behalf-of token${who}` : ''}`;
    case 'external':
      return `external token${who}${from}${line.direction === 'outbound' && line.decision === 'allow' ? ' → exchanged for an internal token' : ''}`;
    case 'internal':
      return `internal token${who}${from}`;
    default:
      // Denied before the token verified (unknown issuer, bad signature...): nothing in it is trusted.
      return line.subject === undefined ? 'a token that did not verify' : `token${who}${from}`;
  }
}

/** A decision as three short lines: the hop and call, the token, the checks and the verdict. */
export function formatDecision(line: DecisionLine, indent = '    '): string[] {
  const call = line.method !== undefined && line.path === undefined ? line.method : `${line.method ?? ''} ${line.path ?? ''}`.trim();
  const out = [`${indent}${hopOf(line)}  ${call}`];
  out.push(`${indent}    token:    ${tokenOf(line)}`);
  for (const check of line.checks) {
    out.push(`${indent}    SpiceDB:  ${check.resource}#${check.permission}@${check.subject} → ${check.result}${check.cached ? ' (cached)' : ''}`);
  }
  const verdict = line.decision === 'allow' ? 'ALLOW' : `DENY ${line.status ?? ''}`.trim();
  out.push(`${indent}    decision: ${verdict} ${line.reason}${line.rule ? ` (rule ${line.rule})` : ''}${line.decision === 'deny' && line.detail ? ` - ${line.detail}` : ''}`);
  return out;
}
