#!/usr/bin/env bash
# Starts etcd + kube-apiserver on loopback with all state under $D, and writes $D/kubeconfig
# (token auth, RBAC on, admin token in system:masters). Ready in about 3-5 s.
# Usage: [BIN=<dir with etcd and kube-apiserver>] D=<state dir> [PORT=64430 ETCD_PORT=23790] \
#          bash start.sh
# Stop:  kill "$(cat $D/apiserver.pid)" "$(cat $D/etcd.pid)"
# Limits: API server + etcd only (no controller-manager, scheduler or kubelet: no pods run);
# Kubernetes 1.20 rejects newer fields such as readinessProbe.grpc and prunes unknown CRD fields.
set -euo pipefail
BIN=${BIN:-$HOME/.cache/dcsa-tools/kube-apiserver-1.20/bin}
D=${D:-$(mktemp -d)}
PORT=${PORT:-64430}
ETCD_PORT=${ETCD_PORT:-23790}
PEER_PORT=${PEER_PORT:-$((ETCD_PORT + 10))}
mkdir -p "$D/certs"
openssl genrsa -out "$D/sa.key" 2048 2>/dev/null
openssl rsa -in "$D/sa.key" -pubout -out "$D/sa.pub" 2>/dev/null
echo "devtoken,admin,admin,system:masters" > "$D/tokens.csv"
"$BIN/etcd" --data-dir "$D/etcd-data" \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$PEER_PORT" \
  --initial-advertise-peer-urls "http://127.0.0.1:$PEER_PORT" \
  --initial-cluster "default=http://127.0.0.1:$PEER_PORT" > "$D/etcd.log" 2>&1 &
echo $! > "$D/etcd.pid"
"$BIN/kube-apiserver" --etcd-servers="http://127.0.0.1:$ETCD_PORT" --bind-address=127.0.0.1 \
  --advertise-address=127.0.0.1 --secure-port="$PORT" --cert-dir="$D/certs" \
  --token-auth-file="$D/tokens.csv" --authorization-mode=RBAC \
  --service-account-issuer=https://kubernetes.default.svc \
  --service-account-key-file="$D/sa.pub" --service-account-signing-key-file="$D/sa.key" \
  --service-cluster-ip-range=10.96.0.0/16 --disable-admission-plugins=ServiceAccount \
  --enable-priority-and-fairness=false > "$D/apiserver.log" 2>&1 &
echo $! > "$D/apiserver.pid"
cat > "$D/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters: [{name: local, cluster: {server: "https://127.0.0.1:$PORT", insecure-skip-tls-verify: true}}]
users: [{name: admin, user: {token: devtoken}}]
contexts: [{name: local, context: {cluster: local, user: admin, namespace: default}}]
current-context: local
KC
# Readiness over plain HTTPS (no kubectl needed).
for _ in $(seq 1 60); do
  if curl -fsk -H "Authorization: Bearer devtoken" "https://127.0.0.1:$PORT/readyz" >/dev/null 2>&1
  then echo "$D/kubeconfig"; exit 0; fi
  sleep 1
done
echo "kube-apiserver did not become ready; see $D/apiserver.log" >&2
exit 1
