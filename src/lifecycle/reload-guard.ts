/**
 * What a reload may not do silently: drop a whole section that is serving traffic. A file cut
 * short, or a ConfigMap edited in the wrong place, would otherwise turn every Check of that
 * direction into a denial at once. The operator opts in with `reload.allowSectionRemoval: true`
 * in the new file; a restart with the new file is always allowed.
 */
import type { Config } from '../config/schema.js';

const SERVING_SECTIONS = ['inbound', 'outbound'] as const;

/** One problem per serving section that `next` removes, unless `next` allows it. */
export function sectionRemovalProblems(current: Config, next: Config): string[] {
  if (next.reload.allowSectionRemoval) return [];
  return SERVING_SECTIONS.filter((section) => current[section] !== undefined && next[section] === undefined).map(
    (section) =>
      `${section}: the running configuration has this section and the new one does not; a reload never removes a serving section ` +
      'unless the new file sets reload.allowSectionRemoval: true (or the sidecar is restarted with it)',
  );
}
