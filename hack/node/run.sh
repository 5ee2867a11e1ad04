#!/usr/bin/env bash
# run.sh -- COMMAND... — starts a single-node Kubernetes cluster on this machine,
# runs COMMAND inside the cluster's network namespace, and tears the cluster down again whatever
# COMMAND's outcome. Exit status: COMMAND's, or non-zero when the node could not be provided.
#
#   Network   all of it (etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
#             containerd + kubelet, kube-proxy, CoreDNS, the Pods, and COMMAND with the test
#             servers it starts) runs in the network namespace $GEO_NODE_NETNS, which this script
#             creates with only a loopback device, which also holds the node IP — and NO route out
#             (no default route, no link to the host). A packet to a Service IP that kube-proxy has
#             not translated, or to anything off the machine, has nowhere to go.
#   Lock      one cluster per machine (ports, cni0 and the namespace name are per machine):
#             flock on $GEO_NODE_DIR/lock for the whole run.
#   Teardown  by PID: node.sh is PID 1 of its own PID namespace, so stopping it (TERM, then KILL)
#             ends every process of the node and every container; its mounts live in its own mount
#             namespace; iptables rules and interfaces live in the network namespace, deleted last;
#             the Pods' cgroup tree /$CGROUP_ROOT is removed. Then it checks that nothing is left.
#   Images    hack/node/image.sh builds the geo-operator image with podman (no registry needed)
#             and it is imported into containerd only when its ID changed since the last import.
#
# COMMAND sees KUBECONFIG (admin), GEO_E2E_NODE_IP, GEO_E2E_IMAGE (the image reference Pods use),
# GEO_E2E_IMAGE_ID, GEO_E2E_RUN_DIR and KUBECTL/HELM (binary paths).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
here="$repo/hack/node"
dir="${GEO_NODE_DIR:-/var/tmp/geo-operator-node}"
NETNS="${GEO_NODE_NETNS:-geo-operator-e2e}"
NODE_IP=10.250.0.1 NODE_NAME=geo-e2e-node CGROUP_ROOT=geo-operator-e2e
IMAGE=localhost/geo-operator:e2e PAUSE_IMAGE=localhost/geo-operator-pause:1
RUN=$dir/run
log() { printf '[node %s] %s\n' "$(date +%T)" "$*" >&2; }
loud() {
  printf '\n%s\n' "################################################################################" >&2
  printf '# %s\n' "$@" >&2
  printf '%s\n\n' "################################################################################" >&2
}

[ "${1:-}" = -- ] && shift
[ $# -gt 0 ] || { echo "usage: run.sh -- COMMAND..." >&2; exit 2; }

# --- What the machine must offer; a missing piece is a loud failure, never a pass. ---------------
cannot() {
  loud "THE REAL-NODE END-TO-END TESTS CANNOT RUN ON THIS MACHINE: $*" \
       "Nothing was tested. This is a FAILURE, not a skip (see docs/development.md, 'Real node')."
  exit 3
}
[ "$(id -u)" = 0 ] || cannot "they need root (network, PID and mount namespaces, containerd, iptables)"
for c in ip unshare nsenter setsid flock mountpoint openssl curl iptables containerd ctr runc podman go; do
  command -v "$c" >/dev/null || cannot "'$c' is not installed (make tools-node installs the packages)"
done
CNI_BIN=""
for d in /usr/lib/cni /opt/cni/bin; do [ -x "$d/bridge" ] && [ -x "$d/host-local" ] && CNI_BIN=$d && break; done
[ -n "$CNI_BIN" ] || cannot "the CNI plugins (bridge, host-local, portmap) are not installed"
[ -d /sys/fs/cgroup/memory ] || [ -f /sys/fs/cgroup/cgroup.controllers ] || cannot "no cgroup file system at /sys/fs/cgroup"
unshare --net --pid --fork --mount true 2>/dev/null || cannot "this machine does not allow new network/PID/mount namespaces"

mkdir -p "$dir"
exec 8>"$dir/lock"
if ! flock -n 8; then log "another node run holds $dir/lock; waiting"; flock 8; fi

# --- Leftovers of a run that was killed before its teardown (only what that run recorded). -------
cgroup_dirs() {
  if [ -f /sys/fs/cgroup/cgroup.controllers ]; then echo "/sys/fs/cgroup/$CGROUP_ROOT"
  else for h in /sys/fs/cgroup/*/; do [ -L "${h%/}" ] || echo "${h}$CGROUP_ROOT"; done; fi
}
remove_cgroups() {
  local d tries
  for d in $(cgroup_dirs); do
    [ -d "$d" ] || continue
    for tries in 1 2 3 4 5 6 7 8 9 10; do
      find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
      [ -d "$d" ] || break
      sleep 0.5
    done
    [ -d "$d" ] && log "WARNING: could not remove cgroup $d"
  done
  return 0
}
reap() {
  local f pid
  if [ -f "$dir/node.pid" ]; then
    read -r pid start <"$dir/node.pid" || true
    # Only the process recorded, and only if it is still that process (same start time).
    if [ -n "${pid:-}" ] && [ "$(awk '{print $22}' "/proc/$pid/stat" 2>/dev/null)" = "${start:-}" ]; then
      log "stopping node.sh of an earlier run (pid $pid)"
      kill -KILL "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$dir/node.pid"
  fi
  if ip netns list | grep -qw "^$NETNS"; then ip netns delete "$NETNS"; fi
  remove_cgroups
}
reap

# --- Binaries, images, certificates. ---------------------------------------------------------------
t0=$SECONDS
mapfile -t bins < <(bash "$repo/hack/tools/ensure.sh" etcd kube-apiserver kubectl helm kubelet kube-proxy kube-controller-manager kube-scheduler coredns)
export ETCD=${bins[0]} KUBE_APISERVER=${bins[1]} KUBECTL=${bins[2]} HELM=${bins[3]} KUBELET=${bins[4]} \
  KUBE_PROXY=${bins[5]} KUBE_CONTROLLER_MANAGER=${bins[6]} KUBE_SCHEDULER=${bins[7]} COREDNS=${bins[8]}
log "binaries ready ($((SECONDS - t0)) s)"
t0=$SECONDS
image_id="$(bash "$here/image.sh" "$IMAGE")"
pause_id="$(bash "$here/pause-image.sh" "$PAUSE_IMAGE")"
log "images ready ($((SECONDS - t0)) s)"

rm -rf "$RUN"
mkdir -p "$RUN"
bash "$here/pki.sh" "$RUN/pki" "$NODE_IP" "$NODE_NAME"
for d in $(cgroup_dirs); do
  mkdir -p "$d"
  # cgroup v1 cpuset: a new group has no CPUs or memory nodes until given its parent's.
  if [[ "$d" == */cpuset/* ]]; then
    cat "$(dirname "$d")/cpuset.cpus" >"$d/cpuset.cpus"
    cat "$(dirname "$d")/cpuset.mems" >"$d/cpuset.mems"
  fi
done

# --- The network namespace: loopback and the node IP, no route out. -------------------------------
ip netns add "$NETNS"
ip -n "$NETNS" link set lo up
# The node IP sits on the loopback device: local to the namespace, reachable from Pods through
# cni0, and tied to no link (kernels without the dummy device type have one too).
ip -n "$NETNS" addr add "$NODE_IP/32" dev lo
assert_no_route_out() {
  local routes
  routes="$(ip -n "$NETNS" route show default; ip -n "$NETNS" -6 route show default)"
  if [ -n "$routes" ]; then loud "the node's network namespace has a default route: $routes"; return 1; fi
  if ip -n "$NETNS" -o link show | grep -Ev ': (lo|cni0|veth[^:@]*)[@:]' | grep -q .; then
    loud "the node's network namespace has an unexpected interface:" "$(ip -n "$NETNS" -o link show)"; return 1
  fi
  # What the kernel would do with a packet for an outside address (IPv4 and IPv6) or for an
  # address of the host's own network: no route at all, so it cannot leave.
  local target route
  for target in 1.1.1.1 2606:4700:4700::1111 $(hostname -I 2>/dev/null | awk '{print $1}'); do
    if route="$(ip -n "$NETNS" route get "$target" 2>&1)"; then
      loud "the node's network namespace routes $target: $route"; return 1
    fi
  done
}
assert_no_route_out

# The host's own rules (another cluster's, say) are not ours: only an increase counts.
host_kube_rules() { iptables-save 2>/dev/null | grep -c 'KUBE-' || true; }
host_rules_before="$(host_kube_rules)"
node_pid=""
command_pid=""
teardown() {
  local code=$?
  trap - EXIT INT TERM
  set +e
  # Interrupted while the command ran: it goes first (TERM, then KILL), so it can stop its servers.
  # The command leads its own process group (setsid below): the whole group is signalled, so the
  # test runner's worker processes and the servers they started end with it.
  if [ -n "$command_pid" ] && kill -0 "$command_pid" 2>/dev/null; then
    kill -TERM -- "-$command_pid" 2>/dev/null || kill -TERM "$command_pid"
    for _ in $(seq 1 300); do kill -0 -- "-$command_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$command_pid" 2>/dev/null
  fi
  if [ -n "$node_pid" ]; then
    # An interface or route that appeared during the run fails the run even if the tests passed.
    assert_no_route_out || code=1
    local init
    init="$(cat "/proc/$node_pid/task/$node_pid/children" 2>/dev/null | awk '{print $1}')"
    if [ -n "$init" ]; then
      kill -TERM "$init" 2>/dev/null
      for _ in $(seq 1 300); do kill -0 "$init" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$init" 2>/dev/null
    fi
    kill -KILL "$node_pid" 2>/dev/null
    wait "$node_pid" 2>/dev/null
    rm -f "$dir/node.pid"
  fi
  ip netns delete "$NETNS" 2>/dev/null
  remove_cgroups
  # Nothing of the node may outlive it.
  local left=""
  grep -q " $RUN" /proc/self/mountinfo && left+=" mounts under $RUN;"
  ip netns list | grep -qw "^$NETNS" && left+=" network namespace $NETNS;"
  [ "$(host_kube_rules)" -gt "$host_rules_before" ] && left+=" KUBE- iptables rules in the host's namespace;"
  for d in $(cgroup_dirs); do [ -d "$d" ] && left+=" cgroup $d;"; done
  if [ -n "$left" ]; then loud "the node left things behind:$left"; [ "$code" = 0 ] && code=1; fi
  log "node torn down (exit $code)"
  exit "$code"
}
trap teardown EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- The node. -------------------------------------------------------------------------------------
t0=$SECONDS
export RUN NODE_IP NODE_NAME CGROUP_ROOT CNI_BIN PAUSE_IMAGE CONTAINERD_ROOT="$dir/containerd"
nsenter --net="/run/netns/$NETNS" unshare --pid --fork --mount --propagation private --mount-proc \
  bash "$here/node.sh" 2>"$RUN/node.log" &
node_pid=$!
echo "$node_pid $(awk '{print $22}' "/proc/$node_pid/stat")" >"$dir/node.pid"
until [ -e "$RUN/ready" ]; do
  if ! kill -0 "$node_pid" 2>/dev/null || [ $((SECONDS - t0)) -gt 240 ]; then
    loud "the node did not start; its log ($RUN/node.log) and component logs ($RUN/logs):"
    cat "$RUN/node.log" >&2
    for f in "$RUN"/logs/*.log; do echo "--- $f" >&2; tail -15 "$f" >&2; done
    exit 1
  fi
  sleep 0.5
done
log "node ready ($((SECONDS - t0)) s)"

# --- Images into containerd, only when changed. ---------------------------------------------------
ctr_address="$(cat "$RUN/containerd.address")"
import() { # reference id
  local stamp="$dir/imported/$(echo "$1" | tr '/:' '__')"
  mkdir -p "$dir/imported"
  if [ "$(cat "$stamp" 2>/dev/null)" = "$2" ] && ctr --address "$ctr_address" -n k8s.io images ls -q "name==$1" | grep -q .; then
    log "$1 in containerd is current (${2:7:12})"; return
  fi
  local t=$SECONDS
  # The previous version goes first, by name and by the ID reference the CRI plugin adds, so
  # its layers do not pile up in the kept image store.
  local previous
  previous="$(cat "$stamp" 2>/dev/null || true)"
  ctr --address "$ctr_address" -n k8s.io images rm --sync "$1" ${previous:+"$previous"} >/dev/null 2>&1 || true
  # shellcheck source=podman-env.sh
  (source "$here/podman-env.sh"; podman save --format docker-archive "$1") \
    | ctr --address "$ctr_address" -n k8s.io images import - >/dev/null
  echo "$2" >"$stamp"
  log "imported $1 (${2:7:12}) into containerd in $((SECONDS - t)) s"
}
import "$PAUSE_IMAGE" "$pause_id"
import "$IMAGE" "$image_id"

# --- The command, in the node's network namespace. -------------------------------------------------
log "running: $*"
set +e
setsid -w nsenter --net="/run/netns/$NETNS" env KUBECONFIG="$RUN/pki/admin.kubeconfig" GEO_E2E_NODE_IP="$NODE_IP" \
  GEO_E2E_IMAGE="$IMAGE" GEO_E2E_IMAGE_ID="$image_id" GEO_E2E_RUN_DIR="$RUN" KUBECTL="$KUBECTL" HELM="$HELM" "$@" &
command_pid=$!
wait "$command_pid"
status=$?
command_pid=""
set -e
if [ "$status" != 0 ]; then
  # What a failed run looked like, kept until the next run: objects, events, the operator's logs.
  diag="$dir/last-failure"
  rm -rf "$diag" && mkdir -p "$diag"
  k() { nsenter --net="/run/netns/$NETNS" "$KUBECTL" --kubeconfig "$RUN/pki/admin.kubeconfig" "$@"; }
  k get nodes,pods,jobs,leases,geosites,replicabletypes -A -o wide >"$diag/objects.txt" 2>&1 || true
  k get events -A --sort-by=.lastTimestamp >"$diag/events.txt" 2>&1 || true
  for pod in $(k get pods -A -l app.kubernetes.io/component=manager -o jsonpath='{range .items[*]}{.metadata.namespace}/{.metadata.name}{"\n"}{end}' 2>/dev/null); do
    k logs -n "${pod%%/*}" "${pod#*/}" >"$diag/${pod#*/}.log" 2>&1 || true
    k logs -n "${pod%%/*}" "${pod#*/}" --previous >"$diag/${pod#*/}.previous.log" 2>&1 || true
  done
  cp -r "$RUN/logs" "$diag/node-logs"
  log "the command failed; diagnostics in $diag"
fi
for f in "$RUN"/dead.*; do
  [ -e "$f" ] || continue
  loud "node component ${f##*/dead.} exited during the run (log: $RUN/logs/${f##*/dead.}.log)"
  status=1
done
exit $status
