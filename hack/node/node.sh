#!/usr/bin/env bash
# node.sh — the single-node cluster itself. hack/node/run.sh starts this script as PID 1 of new
# PID and mount namespaces inside the node's network namespace (which has no route out), so:
#   - every process started here, and every container, dies with this script (the kernel kills a
#     PID namespace's members when its init exits);
#   - every mount made here (the kubelet's bind mount of its root dir, container root file
#     systems, Pod network namespace files) exists only in this mount namespace;
#   - every iptables rule and interface (cni0, veths) exists only in the network namespace.
#
# Environment (from run.sh): RUN (per-run state dir), CONTAINERD_ROOT (image store kept between
# runs), NODE_IP, NODE_NAME, and the binaries ETCD KUBE_APISERVER KUBE_CONTROLLER_MANAGER
# KUBE_SCHEDULER KUBELET KUBE_PROXY COREDNS. Writes $RUN/ready once the Node is Ready and
# CoreDNS answers; on SIGTERM stops the components in reverse order and unmounts.
set -euo pipefail
: "${RUN:?}" "${CONTAINERD_ROOT:?}" "${NODE_IP:?}" "${NODE_NAME:?}"
pki=$RUN/pki logs=$RUN/logs pids=$RUN/pids
mkdir -p "$logs" "$pids"
log() { printf '[node %s] %s\n' "$(date +%T)" "$*" >&2; }
started=()

start() { # name command args...
  local name=$1
  shift
  "$@" >"$logs/$name.log" 2>&1 &
  echo $! >"$pids/$name"
  started+=("$name")
}

wait_for() { # description timeout-seconds command...
  local what=$1 deadline=$((SECONDS + $2))
  shift 2
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then log "timed out waiting for $what"; return 1; fi
    sleep 0.5
  done
}

stop_all() {
  trap - TERM INT
  log "stopping"
  local i name pid
  # Containers first, while containerd still runs: their shims exit with them.
  if [ -n "${CTR_ADDRESS:-}" ] && [ -S "$CTR_ADDRESS" ]; then
    for i in "${!started[@]}"; do [ "${started[$i]}" = kubelet ] && kill -TERM "$(cat "$pids/kubelet")" 2>/dev/null || true; done
    for c in $(ctr --address "$CTR_ADDRESS" -n k8s.io tasks ls -q 2>/dev/null); do
      ctr --address "$CTR_ADDRESS" -n k8s.io tasks kill -s SIGKILL "$c" >/dev/null 2>&1 || true
    done
    sleep 1
    for c in $(ctr --address "$CTR_ADDRESS" -n k8s.io tasks ls -q 2>/dev/null); do
      ctr --address "$CTR_ADDRESS" -n k8s.io tasks delete -f "$c" >/dev/null 2>&1 || true
    done
    for c in $(ctr --address "$CTR_ADDRESS" -n k8s.io containers ls -q 2>/dev/null); do
      ctr --address "$CTR_ADDRESS" -n k8s.io containers delete "$c" >/dev/null 2>&1 || true
    done
  fi
  for ((i = ${#started[@]} - 1; i >= 0; i--)); do
    name=${started[$i]}
    pid=$(cat "$pids/$name")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  # The kubelet bind-mounts its root dir onto itself; pods' volumes are mounted below it.
  if mountpoint -q "$RUN/kubelet"; then umount -R "$RUN/kubelet" || umount -R -l "$RUN/kubelet"; fi
  log "stopped"
  exit 0
}
trap stop_all TERM INT

# Network namespace files of Pods: in this mount namespace only.
mkdir -p /run/netns && mount -t tmpfs -o mode=0755 geo-netns /run/netns

# etcd and kube-apiserver.
start etcd "$ETCD" --data-dir="$RUN/etcd" --listen-client-urls=http://127.0.0.1:2379 \
  --advertise-client-urls=http://127.0.0.1:2379 --listen-peer-urls=http://127.0.0.1:2380 \
  --initial-advertise-peer-urls=http://127.0.0.1:2380 --initial-cluster=default=http://127.0.0.1:2380 \
  --unsafe-no-fsync=true --log-level=warn
wait_for etcd 30 curl -fsS http://127.0.0.1:2379/health
start kube-apiserver "$KUBE_APISERVER" --etcd-servers=http://127.0.0.1:2379 \
  --bind-address="$NODE_IP" --advertise-address="$NODE_IP" --secure-port=6443 \
  --cert-dir="$pki" --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
  --client-ca-file="$pki/ca.crt" --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
  --requestheader-client-ca-file="$pki/front-proxy-ca.crt" --requestheader-allowed-names=front-proxy-client \
  --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
  --requestheader-extra-headers-prefix=X-Remote-Extra- \
  --proxy-client-cert-file="$pki/front-proxy-client.crt" --proxy-client-key-file="$pki/front-proxy-client.key" \
  --enable-aggregator-routing=true \
  --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-cluster-ip-range=10.0.0.0/24 \
  --kubelet-client-certificate="$pki/admin.crt" --kubelet-client-key="$pki/admin.key" \
  --kubelet-certificate-authority="$pki/ca.crt" --kubelet-preferred-address-types=InternalIP \
  --enable-priority-and-fairness=false --profiling=false --v=0
admin=(--kubeconfig "$pki/admin.kubeconfig")
wait_for kube-apiserver 120 curl -fsS --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" "https://$NODE_IP:6443/readyz"

start kube-controller-manager "$KUBE_CONTROLLER_MANAGER" "${admin[@]}" --leader-elect=false \
  --bind-address=127.0.0.1 --service-account-private-key-file="$pki/sa.key" --root-ca-file="$pki/ca.crt" \
  --use-service-account-credentials=false --controllers='*,-nodeipam,-cloud-node-lifecycle' --profiling=false
start kube-scheduler "$KUBE_SCHEDULER" "${admin[@]}" --leader-elect=false --bind-address=127.0.0.1 --profiling=false

# containerd: images persist in CONTAINERD_ROOT between runs; everything else is per run.
CTR_ADDRESS=$RUN/containerd/containerd.sock
mkdir -p "$RUN/containerd" "$RUN/cni/net.d" "$CONTAINERD_ROOT"
cat >"$RUN/containerd/config.toml" <<EOF
version = 2
root = "$CONTAINERD_ROOT"
state = "$RUN/containerd/state"
[grpc]
  address = "$CTR_ADDRESS"
[plugins."io.containerd.internal.v1.opt"]
  path = "$RUN/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # Without it every sandbox fails ("runc create failed ... can't get final child's PID from pipe").
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN"
    conf_dir = "$RUN/cni/net.d"
EOF
# Pods: one bridge in this network namespace; their default route ends at the node, which has none.
cat >"$RUN/cni/net.d/10-geo-e2e.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "geo-e2e",
  "plugins": [
    { "type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
      "ipam": { "type": "host-local", "dataDir": "$RUN/cni/ipam",
                "ranges": [[{ "subnet": "10.244.0.0/24" }]], "routes": [{ "dst": "0.0.0.0/0" }] } },
    { "type": "portmap", "capabilities": { "portMappings": true } }
  ]
}
EOF
start containerd containerd --config "$RUN/containerd/config.toml"
wait_for containerd 30 ctr --address "$CTR_ADDRESS" version
# The CRI plugin answers "server is not initialized yet" until it has recovered its state, and a
# kubelet started before that exits at once. Its last start-up step logs this line.
wait_for "containerd's CRI plugin" 60 grep -q "Start streaming server" "$logs/containerd.log"
# Containers a killed earlier run left in the kept image store.
for c in $(ctr --address "$CTR_ADDRESS" -n k8s.io containers ls -q 2>/dev/null); do
  ctr --address "$CTR_ADDRESS" -n k8s.io tasks delete -f "$c" >/dev/null 2>&1 || true
  ctr --address "$CTR_ADDRESS" -n k8s.io containers delete "$c" >/dev/null 2>&1 || true
done
echo "$CTR_ADDRESS" >"$RUN/containerd.address"

# kubelet: Pods' cgroups go under /$CGROUP_ROOT in every hierarchy (run.sh creates and removes it).
: >"$RUN/resolv.conf"
cat >"$RUN/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous: { enabled: false }
  webhook: { enabled: true }
  x509: { clientCAFile: "$pki/ca.crt" }
authorization: { mode: Webhook }
address: "$NODE_IP"
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
tlsCertFile: "$pki/kubelet-serving.crt"
tlsPrivateKeyFile: "$pki/kubelet-serving.key"
containerRuntimeEndpoint: "unix://$CTR_ADDRESS"
cgroupDriver: cgroupfs
cgroupRoot: "/$CGROUP_ROOT"
failCgroupV1: false
failSwapOn: false
clusterDNS: ["10.0.0.10"]
clusterDomain: cluster.local
resolvConf: "$RUN/resolv.conf"
podLogsDir: "$RUN/pod-logs"
evictionHard: { memory.available: "50Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%" }
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
registerNode: true
EOF
start kubelet "$KUBELET" --config="$RUN/kubelet.yaml" --kubeconfig="$pki/kubelet.kubeconfig" \
  --root-dir="$RUN/kubelet" --node-ip="$NODE_IP" --hostname-override="$NODE_NAME" --v=1
start kube-proxy "$KUBE_PROXY" --kubeconfig="$pki/proxy.kubeconfig" --proxy-mode=iptables \
  --hostname-override="$NODE_NAME" --cluster-cidr=10.244.0.0/24 --masquerade-all \
  --conntrack-max-per-core=0 --conntrack-tcp-timeout-established=0 --conntrack-tcp-timeout-close-wait=0 \
  --healthz-bind-address=127.0.0.1:10256 --metrics-bind-address=127.0.0.1:10249

# CoreDNS on the node IP, behind the usual kube-dns Service (10.0.0.10) that kube-proxy routes.
cat >"$RUN/Corefile" <<EOF
.:53 {
  bind $NODE_IP
  errors
  health 127.0.0.1:8080
  ready 127.0.0.1:8181
  kubernetes cluster.local in-addr.arpa ip6.arpa {
    kubeconfig $pki/admin.kubeconfig
    pods insecure
    fallthrough in-addr.arpa ip6.arpa
  }
  cache 5
}
EOF
start coredns "$COREDNS" -conf "$RUN/Corefile"
kubectl() { "$KUBECTL" "${admin[@]}" "$@"; }
kubectl apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Service
metadata: { name: kube-dns, namespace: kube-system, labels: { k8s-app: kube-dns } }
spec:
  clusterIP: 10.0.0.10
  ports: [{ name: dns, port: 53, protocol: UDP }, { name: dns-tcp, port: 53, protocol: TCP }]
---
apiVersion: v1
kind: Endpoints
metadata: { name: kube-dns, namespace: kube-system }
subsets:
  - addresses: [{ ip: "$NODE_IP" }]
    ports: [{ name: dns, port: 53, protocol: UDP }, { name: dns-tcp, port: 53, protocol: TCP }]
EOF
wait_for "node $NODE_NAME Ready" 120 kubectl wait --for=condition=Ready "node/$NODE_NAME" --timeout=2s
wait_for "CoreDNS ready" 60 curl -fsS http://127.0.0.1:8181/ready
touch "$RUN/ready"
log "ready"

# Until told to stop: report a component that exits on its own (run.sh's checks then fail).
while true; do
  for name in "${started[@]}"; do
    pid=$(cat "$pids/$name")
    if ! kill -0 "$pid" 2>/dev/null && [ ! -e "$RUN/dead.$name" ]; then
      log "$name (pid $pid) exited; last lines of $logs/$name.log:"
      tail -5 "$logs/$name.log" >&2 || true
      touch "$RUN/dead.$name"
    fi
  done
  sleep 1 &
  wait $! || true
done
