#!/usr/bin/env bash
# Renders examples/kubernetes/gateway-pod.yaml from the Helm chart (charts/jwtauth-sidecar) and
# examples/kubernetes/values.yaml. test/unit/helm-chart.test.ts fails when the file is not what
# this writes, so the example and the chart cannot drift. Needs the pinned helm:
#   bash scripts/install-tools.sh helm
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HELM="${HELM:-$ROOT/.tools/bin/helm}"
OUT="$ROOT/examples/kubernetes/gateway-pod.yaml"
{
  cat <<'HEADER'
# A gateway pod with jwtauth-sidecar: the app, Envoy and the sidecar in one pod, the Service that
# publishes the sidecar's JWKS, and a PodDisruptionBudget. GENERATED from the Helm chart; do not
# edit. Change charts/jwtauth-sidecar or examples/kubernetes/values.yaml, then run
#   bash scripts/render-kubernetes-example.sh
# With Helm, install the chart instead: docs/deploying-image.md#install-with-helm.
# test/unit/examples.test.ts validates every manifest here against the Kubernetes API schemas,
# the jwtauth.yaml below with the sidecar's own preflight, the pod's wiring (probes, ports,
# mounts), and envoy.yaml against jwtauth.yaml (`validate --envoy`).
HEADER
  HELM_CONFIG_HOME=/tmp/jwtauth-helm/config HELM_CACHE_HOME=/tmp/jwtauth-helm/cache HELM_DATA_HOME=/tmp/jwtauth-helm/data \
    "$HELM" template gwadmin "$ROOT/charts/jwtauth-sidecar" --namespace cloud \
    -f "$ROOT/examples/kubernetes/values.yaml" \
    --set-file "protoFiles.vmcontroller\.proto=$ROOT/examples/demo/vmcontroller.proto"
} > "$OUT.tmp"
mv "$OUT.tmp" "$OUT"
echo "wrote $OUT"
