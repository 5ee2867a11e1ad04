#!/usr/bin/env bash
# provision.sh — everything `make test` builds or installs before its suites, with the two Go
# builds side by side: every Kubernetes binary and CoreDNS (one `go build` of the six, as
# ensure.sh does) in one stream, etcd, helm and MinIO in the other. On a cold machine each
# build spends part of its time downloading modules and linking on one core; two of them keep
# both cores busy. Warm, each ensure.sh call is a cache lookup.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bash "$here/ensure-system.sh"

bash "$here/ensure.sh" --node >/dev/null &
kubernetes=$!
bash "$here/ensure.sh" etcd helm minio >/dev/null &
others=$!
status=0
wait "$kubernetes" || { echo "[tools] the Kubernetes binaries or CoreDNS could not be provided" >&2; status=1; }
wait "$others" || { echo "[tools] etcd, helm or MinIO could not be provided" >&2; status=1; }
[ "$status" = 0 ] || exit 1
# Everything is in the cache now; this checks the default set resolves.
bash "$here/ensure.sh" >/dev/null
