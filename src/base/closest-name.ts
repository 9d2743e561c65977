/**
 * "did you mean" for configuration errors: the known name closest to a misspelt one. Config load
 * only; never on the request path.
 */

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

/** Folds case and separators so `cloudId`, `CloudID` and `cloud_id` meet. */
function folded(name: string): string {
  return name.replace(/[_\-.]/g, '').toLowerCase();
}

/** The closest candidate within a small edit distance, or undefined when nothing is close. */
export function closestName(wanted: string, candidates: Iterable<string>): string | undefined {
  const foldedWanted = folded(wanted);
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(wanted.length / 3)) + 1;
  for (const candidate of candidates) {
    const distance = folded(candidate) === foldedWanted ? 0 : editDistance(wanted, candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

export function didYouMean(wanted: string, candidates: Iterable<string>): string {
  const close = closestName(wanted, candidates);
  return close === undefined ? '' : `; did you mean "${close}"?`;
}
