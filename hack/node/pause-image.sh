#!/usr/bin/env bash
# pause-image.sh [TAG] — the Pods' sandbox image (containerd's sandbox_image) without a registry:
# hack/node/pause/main.go built as a static binary, alone in a FROM-scratch image. Cached by the
# source's checksum. Prints the image ID on stdout.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tag="${1:-localhost/geo-operator-pause:1}"
cache="${GEO_OPERATOR_CACHE:-$HOME/.cache/geo-operator}"
# shellcheck source=podman-env.sh
source "$here/podman-env.sh"
sum="$(sha256sum "$here/pause/main.go" | cut -c1-12)"
out="$cache/pause-$sum"
if [ ! -x "$out/pause" ]; then
  mkdir -p "$out"
  (cd "$here/pause" && CGO_ENABLED=0 GOFLAGS=-mod=mod GO111MODULE=off go build -trimpath -ldflags "-s -w" -o "$out/pause" main.go)
fi
if [ "$(podman image inspect --format '{{index .Labels "geo.replication.dev/source"}}' "$tag" 2>/dev/null)" != "$sum" ]; then
  printf 'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n' >"$out/Containerfile"
  podman build --quiet --pull=never --label "geo.replication.dev/source=$sum" -t "$tag" -f "$out/Containerfile" "$out" >/dev/null
fi
echo "sha256:$(podman image inspect --format '{{.Id}}' "$tag")"
