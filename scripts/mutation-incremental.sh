#!/usr/bin/env bash
# The incremental mutation run of `npm test` (issue #29): Stryker against the committed results
# (docs/mutation/stryker-incremental.json, written by the last `npm run mutation`), so only mutants
# in code changed since, or covered by tests changed since, run again. The other results are
# reused. It mutates only the files that report holds: a module joins once a full run of it is
# committed. The committed file is copied first, so a run never rewrites it; refresh it with
# `npm run mutation` before a release commit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

baseline=docs/mutation/stryker-incremental.json
if [[ ! -f $baseline ]]; then
  echo "no $baseline: run npm run mutation and commit it" >&2
  exit 1
fi
mkdir -p reports/mutation
cp "$baseline" reports/mutation/incremental.json
files=$(node -e 'const r = JSON.parse(require("node:fs").readFileSync(process.argv[1], "utf8")); console.log(Object.keys(r.files).join(","))' "$baseline")
exec npx stryker run --incremental --incrementalFile reports/mutation/incremental.json --mutate "$files" --reporters clear-text,progress-append-only,json "$@"
