#!/usr/bin/env bash
# ensure.sh TOOL... — print the absolute path of each tool's binary, one per line, providing it
# first if needed. TOOL is one of: kube-apiserver etcd kubectl helm minio kind, and for the real
# node of `make e2e`: kubelet kube-proxy kube-controller-manager kube-scheduler coredns.
#
# Resolution order (first hit wins):
#   1. an explicit path in an env var (GEO_KUBE_APISERVER, GEO_ETCD, GEO_KUBECTL, GEO_HELM, GEO_MINIO,
#      GEO_KUBELET, GEO_KUBE_PROXY, GEO_KUBE_CONTROLLER_MANAGER, GEO_KUBE_SCHEDULER, GEO_COREDNS)
#   2. the cache: ${GEO_OPERATOR_CACHE:-~/.cache/geo-operator}/<tool>-<version>/<tool>
#   3. the official release download (skipped with GEO_OPERATOR_NO_DOWNLOAD=1)
#   4. a build from Go modules (needs only `go` and the Go module proxy). The Kubernetes binaries
#      (kube-apiserver, kubectl, kubelet, kube-proxy, kube-controller-manager, kube-scheduler) are
#      built by ONE `go build` of every one of them missing from the cache, so their shared
#      packages compile once.
# Progress goes to stderr; stdout carries only the paths.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
cache="${GEO_OPERATOR_CACHE:-$HOME/.cache/geo-operator}"
mkdir -p "$cache"

log() { printf '[tools] %s\n' "$*" >&2; }

case "$(uname -m)" in
  x86_64|amd64) arch=amd64 ;;
  aarch64|arm64) arch=arm64 ;;
  *) arch="$(uname -m)" ;;
esac
os="$(uname -s | tr '[:upper:]' '[:lower:]')"

version_of() {
  case "$1" in
    kube-apiserver|kubectl|kubelet|kube-proxy|kube-controller-manager|kube-scheduler) echo "$KUBERNETES_VERSION" ;;
    coredns) echo "$COREDNS_VERSION" ;;
    etcd) echo "$ETCD_VERSION" ;;
    helm) echo "$HELM_VERSION" ;;
    minio) echo "$MINIO_VERSION" ;;
    kind) echo "$KIND_VERSION" ;;
    *) log "unknown tool: $1"; exit 2 ;;
  esac
}

env_override() {
  local var="GEO_$(echo "$1" | tr '[:lower:]-' '[:upper:]_')"
  echo "${!var:-}"
}

# download URL DEST: fails fast when the host is unreachable (machines without internet).
download() {
  curl -fsSL --connect-timeout 8 --max-time 600 -o "$2" "$1"
}

try_release() {
  local tool=$1 dir=$2 tmp
  [ "${GEO_OPERATOR_NO_DOWNLOAD:-}" = 1 ] && return 1
  command -v curl >/dev/null || return 1
  tmp="$(mktemp -d)"
  if ! fetch_release "$tool" "$tmp"; then rm -rf "$tmp"; return 1; fi
  chmod +x "$tmp/$tool"
  mkdir -p "$dir" && mv "$tmp/$tool" "$dir/$tool"
  rm -rf "$tmp"
}

fetch_release() {
  local tool=$1 tmp=$2
  case "$tool" in
    kube-apiserver|kubectl|kubelet|kube-proxy|kube-controller-manager|kube-scheduler)
      download "https://dl.k8s.io/release/$KUBERNETES_VERSION/bin/$os/$arch/$tool" "$tmp/$tool" || return 1 ;;
    etcd)
      download "https://github.com/etcd-io/etcd/releases/download/$ETCD_VERSION/etcd-$ETCD_VERSION-$os-$arch.tar.gz" "$tmp/e.tgz" || return 1
      tar -xzf "$tmp/e.tgz" -C "$tmp" --strip-components=1 "etcd-$ETCD_VERSION-$os-$arch/etcd" || return 1 ;;
    helm)
      download "https://get.helm.sh/helm-$HELM_VERSION-$os-$arch.tar.gz" "$tmp/h.tgz" || return 1
      tar -xzf "$tmp/h.tgz" -C "$tmp" --strip-components=1 "$os-$arch/helm" || return 1 ;;
    minio)
      download "https://dl.min.io/server/minio/release/$os-$arch/archive/minio.$MINIO_RELEASE" "$tmp/minio" || return 1 ;;
    kind)
      download "https://kind.sigs.k8s.io/dl/$KIND_VERSION/kind-$os-$arch" "$tmp/kind" || return 1 ;;
    coredns)
      download "https://github.com/coredns/coredns/releases/download/$COREDNS_VERSION/coredns_${COREDNS_VERSION#v}_${os}_$arch.tgz" "$tmp/c.tgz" || return 1
      tar -xzf "$tmp/c.tgz" -C "$tmp" coredns || return 1 ;;
  esac
}

# A throwaway module that requires the upstream module and builds its command. k8s.io/kubernetes
# resolves its k8s.io/* staging modules through ./staging replaces that only work inside its own
# repository, so the wrapper replaces each of them with the published v0.X.Y of the same release.
is_kubernetes() {
  case "$1" in kube-apiserver|kubectl|kubelet|kube-proxy|kube-controller-manager|kube-scheduler) return 0 ;; esac
  return 1
}
KUBERNETES_TOOLS="kube-apiserver kubectl kubelet kube-proxy kube-controller-manager kube-scheduler"

# go_build TOOL DIR [ALSO...]: builds TOOL into DIR/TOOL; for a Kubernetes binary, the same
# `go build` also builds each ALSO tool (other Kubernetes binaries missing from the cache) into
# $cache/<also>-<version>/<also>.
go_build() {
  local tool=$1 dir=$2 work pkg ldflags="" also=("${@:3}")
  command -v go >/dev/null || { log "cannot build $tool: 'go' is not installed"; return 1; }
  work="$cache/build/$tool-$(version_of "$tool")"
  rm -rf "$work" && mkdir -p "$work"
  log "building $tool${also[*]:+ ${also[*]}} $(version_of "$tool") from Go modules (first run only; several minutes on 2 cores)"
  (
    cd "$work"
    export GOFLAGS=-mod=mod GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"
    case "$tool" in
      kube-apiserver|kubectl|etcd|kubelet|kube-proxy|kube-controller-manager|kube-scheduler)
        local staging_ver="v0.${KUBERNETES_VERSION#v1.}"
        go mod init geo-operator.local/tools-build >/dev/null 2>&1
        local gomod
        gomod="$(go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
        {
          echo "require k8s.io/kubernetes $KUBERNETES_VERSION"
          echo "require go.etcd.io/etcd/server/v3 $ETCD_VERSION"
          echo "replace ("
          sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\t\1 => \1 '"$staging_ver"'#p' "$gomod"
          echo ")"
        } >> go.mod
        case "$tool" in
          etcd) pkg=go.etcd.io/etcd/server/v3 ;;
          *) pkg=k8s.io/kubernetes/cmd/$tool ;;
        esac
        if [ "$tool" != etcd ]; then
          local v=$KUBERNETES_VERSION minor
          minor="${v#v1.}"; minor="${minor%%.*}"
          ldflags="-X k8s.io/component-base/version.gitVersion=$v -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/client-go/pkg/version.gitVersion=$v -X k8s.io/component-base/version.gitTreeState=clean"
        fi ;;
      helm)
        go mod init geo-operator.local/tools-build >/dev/null 2>&1
        echo "require helm.sh/helm/v3 $HELM_VERSION" >> go.mod
        pkg=helm.sh/helm/v3/cmd/helm
        ldflags="-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" ;;
      minio)
        go mod init geo-operator.local/tools-build >/dev/null 2>&1
        echo "require github.com/minio/minio $MINIO_VERSION" >> go.mod
        pkg=github.com/minio/minio ;;
      kind)
        go mod init geo-operator.local/tools-build >/dev/null 2>&1
        echo "require sigs.k8s.io/kind $KIND_VERSION" >> go.mod
        pkg=sigs.k8s.io/kind ;;
      coredns)
        go mod init geo-operator.local/tools-build >/dev/null 2>&1
        echo "require github.com/coredns/coredns $COREDNS_VERSION" >> go.mod
        pkg=github.com/coredns/coredns ;;
    esac
    local pkgs=("$pkg") t
    for t in "${also[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$t"); done
    { echo 'package tools'; echo; for t in "${pkgs[@]}"; do echo "import _ \"$t\""; done; } > tools.go
    go mod tidy >&2
    if [ ${#pkgs[@]} -eq 1 ]; then
      CGO_ENABLED=0 go build -trimpath -ldflags "-s -w $ldflags" -o "$work/$tool" "$pkg" >&2
    else
      # -o DIR/ with several main packages writes one binary per package, named after its folder.
      mkdir -p "$work/out"
      CGO_ENABLED=0 go build -trimpath -ldflags "-s -w $ldflags" -o "$work/out/" "${pkgs[@]}" >&2
      mv "$work/out/$tool" "$work/$tool"
    fi
  ) || return 1
  local t
  for t in "${also[@]}"; do
    mkdir -p "$cache/$t-$(version_of "$t")" && mv "$work/out/$t" "$cache/$t-$(version_of "$t")/$t"
  done
  mkdir -p "$dir" && mv "$work/$tool" "$dir/$tool" && rm -rf "$work"
}

# The other Kubernetes binaries among the requested tools that are in neither the env nor the cache.
kubernetes_missing() {
  local first=$1 t
  shift
  for t in "$@"; do
    [ "$t" = "$first" ] && continue
    is_kubernetes "$t" || continue
    [ -n "$(env_override "$t")" ] && continue
    [ -x "$cache/$t-$(version_of "$t")/$t" ] && continue
    echo "$t"
  done | sort -u
}

ensure_one() {
  local tool=$1 override version dir
  override="$(env_override "$tool")"
  if [ -n "$override" ]; then
    [ -x "$override" ] || { log "$tool: $override (from env) is not an executable file"; exit 1; }
    echo "$override"; return
  fi
  version="$(version_of "$tool")"
  dir="$cache/$tool-$version"
  if [ -x "$dir/$tool" ]; then echo "$dir/$tool"; return; fi
  # One builder at a time per tool (one for all the Kubernetes binaries, which build together), so
  # parallel test runs do not build twice.
  local lock=$tool
  is_kubernetes "$tool" && lock=kubernetes
  exec 9>"$cache/.$lock.lock"
  flock 9
  if [ -x "$dir/$tool" ]; then flock -u 9; echo "$dir/$tool"; return; fi
  local also=()
  # shellcheck disable=SC2207
  is_kubernetes "$tool" && also=($(kubernetes_missing "$tool" "${REQUESTED[@]}"))
  if try_release "$tool" "$dir"; then
    log "$tool $version downloaded"
  elif go_build "$tool" "$dir" "${also[@]}"; then
    log "$tool $version built"
  else
    log "could not provide $tool $version (no download, and the Go build failed)"; exit 1
  fi
  flock -u 9
  echo "$dir/$tool"
}

[ $# -gt 0 ] || set -- kube-apiserver etcd kubectl helm minio
[ "$1" = --node ] && set -- kube-apiserver kubectl kubelet kube-proxy kube-controller-manager kube-scheduler coredns
REQUESTED=("$@")
for t in "$@"; do ensure_one "$t"; done
