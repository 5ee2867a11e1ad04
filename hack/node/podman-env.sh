# Sourced by the hack/node scripts that run podman. Container ulimits must stay within what this
# machine lets a process raise: podman's defaults (nofile and nproc of 1048576) make every RUN step
# fail with "error setting rlimit type 7/6: operation not permitted". On the machine this was
# written on, even nproc at the shell's hard limit failed while 32768 worked, so nproc is capped.
# podman reads these defaults from a containers.conf made here.
# shellcheck shell=bash
_geo_conf="${GEO_OPERATOR_CACHE:-$HOME/.cache/geo-operator}/containers.conf"
_geo_limit() { # hard limit of ulimit flag $1, at most $2
  local hard
  hard="$(ulimit -H "$1")"
  if [ "$hard" = unlimited ] || [ "$hard" -gt "$2" ]; then echo "$2"; else echo "$hard"; fi
}
mkdir -p "$(dirname "$_geo_conf")"
printf '[containers]\ndefault_ulimits = ["nofile=%s:%s", "nproc=%s:%s"]\n' \
  "$(_geo_limit -n 65536)" "$(_geo_limit -n 65536)" "$(_geo_limit -u 16384)" "$(_geo_limit -u 16384)" >"$_geo_conf.$$"
mv "$_geo_conf.$$" "$_geo_conf"
export CONTAINERS_CONF="$_geo_conf"
