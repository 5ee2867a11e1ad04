#!/usr/bin/env bash
# image.sh [TAG] — builds the geo-operator image from the Dockerfile with podman, without a
# container registry: the base is the local image hack/node/base-image.sh makes (NODE_IMAGE build
# arg; the Dockerfile's own default stays the public node image), and --pull=never.
# Prints the image ID (sha256:...) on stdout; progress and the image's size go to stderr.
#
# Where a TLS-intercepting proxy sits between this machine and npm (NODE_EXTRA_CA_CERTS is set),
# its CA reaches the build's `npm ci` through an npmrc mounted for the build only; the image does
# not keep it.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
tag="${1:-localhost/geo-operator:e2e}"
log() { printf '[image] %s\n' "$*" >&2; }
# shellcheck source=podman-env.sh
source "$repo/hack/node/podman-env.sh"

base="$(bash "$repo/hack/node/base-image.sh")"
runtime="$(bash "$repo/hack/node/base-image.sh" --runtime)"
args=(build --quiet --pull=never --network=host --layers
      --build-arg "NODE_IMAGE=$base" --build-arg "RUNTIME_IMAGE=$runtime" -t "$tag" -f "$repo/Dockerfile")
tmp="$(mktemp -d "${TMPDIR:-/tmp}/geo-image.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
if [ -n "${NODE_EXTRA_CA_CERTS:-}" ] && [ -s "$NODE_EXTRA_CA_CERTS" ]; then
  cp "$NODE_EXTRA_CA_CERTS" "$tmp/ca.crt"
  printf 'cafile=/run/geo-build/ca.crt\n' >"$tmp/npmrc"
  args+=(-v "$tmp/ca.crt:/run/geo-build/ca.crt:ro,Z" -v "$tmp/npmrc:/usr/local/etc/npmrc:ro,Z")
fi
log "podman build (base $base)"
start=$SECONDS
podman "${args[@]}" "$repo" >"$tmp/build.log" 2>&1 || { tail -40 "$tmp/build.log" >&2; exit 1; }
id="$(podman image inspect --format '{{.Id}}' "$tag")"
size="$(podman image inspect --format '{{.Size}}' "$tag")"
log "built $tag ${id:0:12} in $((SECONDS - start)) s; size $((size / 1000000)) MB"
# Issue 11's budget for a production image with Node, git and tini (installation.md says what
# takes the space); GEO_IMAGE_MAX_MB raises it for a deliberate change.
max_mb="${GEO_IMAGE_MAX_MB:-300}"
if [ $((size / 1000000)) -gt "$max_mb" ]; then
  log "the image is $((size / 1000000)) MB, over the ${max_mb} MB budget: see docs/installation.md#the-image"; exit 1
fi
echo "sha256:${id#sha256:}"
