#!/usr/bin/env bash
# `npm test`: every phase a clean checkout needs before the suite means anything, each timed, so a
# slow CI run says where the time went. Lint runs before the tests: a floating promise or a dead
# export fails the run like a failing test does.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

phase() {
  local name=$1 started=$SECONDS
  shift
  "$@"
  local status=$?
  printf '[test] %-14s %4d s%s\n' "$name" $((SECONDS - started)) "$([[ $status -eq 0 ]] || echo "  FAILED (exit $status)")"
  return $status
}

phase 'tools' bash scripts/install-tools.sh &&
  phase 'build' npm run build --silent &&
  phase 'eslint' npx eslint . &&
  phase 'knip' npx knip &&
  phase 'vitest' npx vitest run
