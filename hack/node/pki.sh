#!/usr/bin/env bash
# pki.sh DIR NODE_IP NODE_NAME — certificates and kubeconfigs of the e2e node, in DIR:
#   ca.{crt,key}           the cluster CA (client and serving certificates)
#   apiserver.{crt,key}    kube-apiserver serving: the node IP, the `kubernetes` Service IP 10.0.0.1
#   sa.{key,pub}           service account token signing
#   admin.kubeconfig       system:masters: the tests, kube-controller-manager, kube-scheduler,
#                          CoreDNS, and the API server's client certificate towards the kubelet
#   kubelet.kubeconfig     system:node:NODE_NAME (group system:nodes) for the Node authorizer
#   proxy.kubeconfig       system:kube-proxy (bound to system:node-proxier by default)
#   front-proxy-ca.{crt,key}, front-proxy-client.{crt,key}
#                          the aggregation layer: the API server's client certificate towards
#                          APIServices (geo-operator's registry API), trusted through
#                          --requestheader-client-ca-file
set -euo pipefail
dir=$1 node_ip=$2 node=$3
mkdir -p "$dir"
cd "$dir"
[ -s admin.kubeconfig ] && exit 0
ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
openssl req -x509 "${ec[@]}" -keyout ca.key -out ca.crt -days 3650 -subj /CN=geo-e2e-ca 2>/dev/null
issue() { # name subject extensions
  openssl req "${ec[@]}" -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
  printf '%b' "$3" >"$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -out "$1.crt" -days 3650 -extfile "$1.ext" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}
issue apiserver /CN=kube-apiserver \
  "subjectAltName=IP:$node_ip,IP:10.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\nextendedKeyUsage=serverAuth\n"
issue admin /O=system:masters/CN=geo-e2e-admin "extendedKeyUsage=clientAuth\n"
issue kubelet "/O=system:nodes/CN=system:node:$node" "extendedKeyUsage=clientAuth\n"
issue kubelet-serving "/CN=$node" "subjectAltName=IP:$node_ip,DNS:$node\nextendedKeyUsage=serverAuth\n"
issue proxy /CN=system:kube-proxy "extendedKeyUsage=clientAuth\n"
openssl req -x509 "${ec[@]}" -keyout front-proxy-ca.key -out front-proxy-ca.crt -days 3650 -subj /CN=geo-e2e-front-proxy-ca 2>/dev/null
openssl req "${ec[@]}" -keyout front-proxy-client.key -out front-proxy-client.csr -subj /CN=front-proxy-client 2>/dev/null
printf 'extendedKeyUsage=clientAuth\n' >front-proxy-client.ext
openssl x509 -req -in front-proxy-client.csr -CA front-proxy-ca.crt -CAkey front-proxy-ca.key -CAcreateserial -out front-proxy-client.crt -days 3650 -extfile front-proxy-client.ext 2>/dev/null
rm -f front-proxy-client.csr front-proxy-client.ext
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 -out sa.key 2>/dev/null
openssl pkey -in sa.key -pubout -out sa.pub 2>/dev/null
kubeconfig() { # file user
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: geo-e2e
  cluster:
    server: https://$node_ip:6443
    certificate-authority-data: $(base64 -w0 ca.crt)
users:
- name: $2
  user:
    client-certificate-data: $(base64 -w0 "$2.crt")
    client-key-data: $(base64 -w0 "$2.key")
contexts:
- name: geo-e2e
  context: { cluster: geo-e2e, user: $2, namespace: default }
current-context: geo-e2e
EOF
  chmod 0600 "$1"
}
kubeconfig kubelet.kubeconfig kubelet
kubeconfig proxy.kubeconfig proxy
kubeconfig admin.kubeconfig admin
