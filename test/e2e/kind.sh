#!/usr/bin/env bash
# make e2e-kind: geo-operator in a real kind cluster — the image built and loaded, installed with
# Helm, in-cluster PostgreSQL/MinIO/git standing in for the sites, the samples replicated.
# Needs a running Docker engine; where there is none it says so and exits 0 (skipped).
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$PWD/node_modules/.bin:$PATH"
if ! command -v docker >/dev/null || ! docker info >/dev/null 2>&1; then
  echo "e2e-kind: SKIPPED — no Docker engine is reachable on this machine (kind runs its nodes as Docker containers)."
  echo "          On a machine with Docker this target creates a kind cluster, builds and loads the image,"
  echo "          installs the chart and replicates the samples."
  exit 0
fi

tools=$(bash hack/tools/ensure.sh kind kubectl helm)
KIND=$(sed -n 1p <<<"$tools"); KUBECTL=$(sed -n 2p <<<"$tools"); HELM=$(sed -n 3p <<<"$tools")
bin=$(mktemp -d); ln -s "$KUBECTL" "$bin/kubectl"; export PATH="$bin:$PATH"
CLUSTER=${E2E_CLUSTER:-geo-e2e}
NS=geo-e2e
IMAGE=geo-operator:e2e
export KUBECONFIG="$bin/kubeconfig"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ "${E2E_KEEP:-}" = 1 ] || "$KIND" delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
  rm -rf "$bin"
}
trap cleanup EXIT

echo "e2e-kind: creating cluster $CLUSTER"
"$KIND" create cluster --name "$CLUSTER" --wait 180s
echo "e2e-kind: building $IMAGE"
docker build -t "$IMAGE" .
"$KIND" load docker-image "$IMAGE" --name "$CLUSTER"

kubectl create namespace "$NS"
kubectl label namespace "$NS" pod-security.kubernetes.io/enforce=baseline
kubectl apply -n "$NS" -f test/e2e/dependencies.yaml
kubectl wait -n "$NS" --for=condition=Available --timeout=300s deployment --all

"$HELM" install geo-operator charts/geo-operator -n geo-operator-system --create-namespace \
  --set image.repository=geo-operator --set image.tag=e2e --set image.pullPolicy=Never --wait --timeout 5m

# Reach the primary's database, bucket and git server from this machine to seed them.
pf() { kubectl port-forward -n "$NS" "svc/$1" "$2:$3" >/dev/null 2>&1 & pids+=($!); }
pf pg-primary 15432 5432; pf s3-primary 19000 9000; pf git-primary 19418 9418
sleep 3
node test/e2e/kind-setup.ts "$NS" 15432 19000 19418
kubectl get geosites,rtype -n "$NS"
