#!/usr/bin/env bash
# ensure-system.sh — install the system packages geo-operator's tests and demo need, when missing:
# PostgreSQL server binaries, git, openssl, curl and setpriv (util-linux). Uses apt-get when run as
# root on Debian/Ubuntu; otherwise says exactly what to install.
#   --bench  also rclone (the benchmarks)
#   --node   also what `make e2e` needs to build the image and run a real node without a container
#            registry: podman (builds the image), debootstrap (the local base image), containerd,
#            runc, the CNI plugins, iptables and iproute2 (the node's network namespace).
set -euo pipefail
missing=()
have_postgres() { compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || command -v postgres >/dev/null || [ -n "${GEO_PG_BIN:-}" ]; }
have_postgres || missing+=(postgresql)
command -v git >/dev/null || missing+=(git)
command -v openssl >/dev/null || missing+=(openssl)
command -v curl >/dev/null || missing+=(curl)
command -v setpriv >/dev/null || missing+=(util-linux)
command -v flock >/dev/null || missing+=(util-linux)
for flag in "$@"; do
  case "$flag" in
    --bench) command -v rclone >/dev/null || missing+=(rclone) ;;
    --node)
      command -v podman >/dev/null || missing+=(podman)
      command -v debootstrap >/dev/null || missing+=(debootstrap)
      command -v containerd >/dev/null || missing+=(containerd)
      command -v runc >/dev/null || missing+=(runc)
      [ -x /usr/lib/cni/bridge ] || [ -x /opt/cni/bin/bridge ] || missing+=(containernetworking-plugins)
      command -v iptables >/dev/null || missing+=(iptables)
      command -v ip >/dev/null || missing+=(iproute2)
      command -v conntrack >/dev/null || missing+=(conntrack)
      command -v nsenter >/dev/null || missing+=(util-linux) ;;
    *) echo "[system] unknown flag: $flag" >&2; exit 2 ;;
  esac
done
[ ${#missing[@]} -eq 0 ] && exit 0
# shellcheck disable=SC2207
missing=($(printf '%s\n' "${missing[@]}" | sort -u))
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "[system] installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  # Debian's postgresql package starts a cluster of its own; the tests start their own servers.
  if [[ " ${missing[*]} " == *" postgresql "* ]] && command -v pg_ctlcluster >/dev/null; then
    for c in /etc/postgresql/*/main; do
      [ -d "$c" ] || continue
      v=$(basename "$(dirname "$c")")
      pg_ctlcluster "$v" main stop >/dev/null 2>&1 || true
    done
  fi
else
  echo "[system] missing: ${missing[*]}. Install them with your package manager (e.g. sudo apt-get install ${missing[*]})." >&2
  exit 1
fi
