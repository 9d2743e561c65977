#!/usr/bin/env bash
# A targeted mutation run of one module (issue #29): Stryker mutates only that module's files and
# runs only the test files named for it, so one module fits a working session on this 2-core
# machine (a full run of five modules took 84 min). Results go to reports/mutation/modules/<name>.*
# and are reused incrementally by the next run of the same module; `node scripts/mutation-merge.mjs
# <name>…` folds them into the committed docs/mutation/stryker-incremental.json. On a loaded machine
# pass --concurrency 1.
#   bash scripts/mutation-module.sh <name> '<mutate globs, comma-separated>' '<test globs, comma-separated>' [stryker args…]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ $# -lt 3 ]]; then
  echo "usage: $0 <name> <mutate globs> <test globs> [stryker args…]" >&2
  exit 2
fi
name=$1 mutate=$2 tests=$3
shift 3
out=reports/mutation/modules
mkdir -p "$out"
incremental=$out/$name.incremental.json
# A module's first targeted run starts from the committed results, so mutants whose code and
# covering tests are unchanged since the last committed run are not run again.
if [[ ! -f $incremental && -f docs/mutation/stryker-incremental.json ]]; then
  cp docs/mutation/stryker-incremental.json "$incremental"
fi
# The TypeScript checker compiles all of src/, which imports the generated protobuf types.
npm run --silent gen:types
started=$(date +%s)
MUTATION_TESTS=$tests npx stryker run \
  --mutate "$mutate" \
  --incremental --incrementalFile "$incremental" \
  --reporters clear-text,progress-append-only,json \
  "$@"
printf '%s\n' "$mutate" > "$out/$name.mutate"
elapsed=$(($(date +%s) - started))
cp reports/mutation/mutation.json "$out/$name.json"
printf '%s\t%s\t%dm%02ds\n' "$name" "$(date -u +%FT%TZ)" $((elapsed / 60)) $((elapsed % 60)) | tee -a "$out/times.tsv"
