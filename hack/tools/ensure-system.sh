#!/usr/bin/env bash
# ensure-system.sh — install the system packages geo-operator's tests and demo need, when missing:
# PostgreSQL server binaries, git, openssl, curl and setpriv (util-linux). Uses apt-get when run as
# root on Debian/Ubuntu; otherwise says exactly what to install.
set -euo pipefail
missing=()
have_postgres() { compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || command -v postgres >/dev/null || [ -n "${GEO_PG_BIN:-}" ]; }
have_postgres || missing+=(postgresql)
command -v git >/dev/null || missing+=(git)
command -v openssl >/dev/null || missing+=(openssl)
command -v curl >/dev/null || missing+=(curl)
command -v setpriv >/dev/null || missing+=(util-linux)
command -v flock >/dev/null || missing+=(util-linux)
if [ "${1:-}" = "--bench" ]; then
  command -v rclone >/dev/null || missing+=(rclone)
fi
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
