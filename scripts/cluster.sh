#!/usr/bin/env bash
# A local Kubernetes control plane for tests: etcd + kube-apiserver + kube-controller-manager
# on loopback, built once from the Go module proxy and cached. No kubelet of its own: pods
# run only when scripts/node.sh joins a node to it.
#
#   scripts/cluster.sh build   build (or reuse) the binaries
#   scripts/cluster.sh up      start them; prints the kubeconfig path
#   scripts/cluster.sh down    stop them
#   scripts/cluster.sh status  say whether it runs
#
# Environment: SLUICE_K8S_VERSION, SLUICE_ETCD_VERSION, SLUICE_APISERVER_PORT (default 16443),
# SLUICE_ETCD_PORT (default 12379).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

ETCD_VERSION="${SLUICE_ETCD_VERSION:-v3.6.16}"
APISERVER_PORT="${SLUICE_APISERVER_PORT:-16443}"
ETCD_PORT="${SLUICE_ETCD_PORT:-12379}"
ETCD_PEER_PORT=$((ETCD_PORT + 1))

BIN="$SLUICE_TOOLS_CACHE/k8s-$K8S_VERSION-etcd-$ETCD_VERSION/bin"
DIR="$SLUICE_STATE/local-cluster"
KUBECONFIG_PATH="$DIR/kubeconfig"

binaries_ok() {
  for b in kube-apiserver kube-controller-manager etcd; do
    [ -x "$BIN/$b" ] || return 1
  done
  # A truncated or corrupt binary fails to print its version.
  "$BIN/etcd" --version >/dev/null 2>&1 && "$BIN/kube-apiserver" --version >/dev/null 2>&1
}

build_etcd() {
  local mod="$SLUICE_TOOLS_CACHE/build/etcd-$ETCD_VERSION"
  mkdir -p "$mod"
  cat >"$mod/go.mod" <<EOF
module sluice.local/etcdbuild

go 1.25

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
EOF
  cat >"$mod/tools.go" <<'EOF'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3"
EOF
  (
    cd "$mod"
    log "building etcd $ETCD_VERSION"
    GOFLAGS=-mod=mod go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >"$mod/get.log" 2>&1 ||
      die "could not resolve etcd $ETCD_VERSION; see $mod/get.log"
    CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" \
      -o "$BIN/etcd.tmp" go.etcd.io/etcd/server/v3 2>"$mod/build.log" ||
      die "building etcd failed; see $mod/build.log"
    mv "$BIN/etcd.tmp" "$BIN/etcd"
  )
}

cmd_build() {
  if binaries_ok; then
    return 0
  fi
  need go "install Go 1.25 or newer (https://go.dev/doc/install), or set SLUICE_TEST_KUBECONFIG to use an existing cluster"
  mkdir -p "$BIN"
  # A half-written or corrupt binary is rebuilt rather than trusted.
  for b in etcd kube-apiserver kube-controller-manager; do
    if [ -e "$BIN/$b" ] && ! "$BIN/$b" --version >/dev/null 2>&1; then
      log "cached $b is corrupt; rebuilding it"
      rm -f "$BIN/$b"
    fi
  done
  [ -x "$BIN/etcd" ] || build_etcd
  { [ -x "$BIN/kube-apiserver" ] && [ -x "$BIN/kube-controller-manager" ]; } ||
    build_k8s_commands "$SLUICE_TOOLS_CACHE/build/k8s-$K8S_VERSION" "$BIN" kube-apiserver kube-controller-manager
  binaries_ok || die "control-plane binaries in $BIN do not run; delete that folder and retry"
}


PKI="$DIR/pki"

# Bumped whenever make_pki's certificates change, so an older set is made again.
# PodTolerationRestriction (below) lets a namespace opt in to the node of scripts/node.sh,
# whose taint keeps every other pod off it (tests that play the kubelet's part for pods
# with no node go on doing so while a node runs).
PKI_GENERATION=2

make_pki() {
  [ "$(cat "$PKI/.complete" 2>/dev/null)" = "$PKI_GENERATION" ] && return 0
  need openssl "install openssl (Debian: apt-get install openssl) to make the cluster's certificates"
  rm -rf "$PKI"
  mkdir -p "$PKI"
  (
    cd "$PKI"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=sluice-local-ca" \
      -keyout ca.key -out ca.crt
    openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" -keyout server.key -out server.csr
    # 10.0.0.1 is the `kubernetes` Service's address, where pods on a node (scripts/node.sh)
    # reach the API server with their in-cluster configuration.
    printf 'subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\n' >server.ext
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile server.ext -out server.crt
    openssl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=sluice-admin" \
      -keyout admin.key -out admin.csr
    openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 -out admin.crt
    openssl genrsa -out sa.key 2048
    openssl rsa -in sa.key -pubout -out sa.pub
  ) >"$DIR/pki.log" 2>&1 || die "making certificates failed; see $DIR/pki.log"
  echo "$PKI_GENERATION" >"$PKI/.complete"
}

write_kubeconfig() {
  {
    echo "apiVersion: v1"
    echo "kind: Config"
    echo "clusters:"
    echo "- name: sluice-local"
    echo "  cluster:"
    echo "    server: https://127.0.0.1:$APISERVER_PORT"
    echo "    certificate-authority: $PKI/ca.crt"
    echo "users:"
    echo "- name: sluice-admin"
    echo "  user:"
    echo "    client-certificate: $PKI/admin.crt"
    echo "    client-key: $PKI/admin.key"
    echo "contexts:"
    echo "- name: sluice-local"
    echo "  context: {cluster: sluice-local, user: sluice-admin}"
    echo "current-context: sluice-local"
  } >"$KUBECONFIG_PATH.tmp"
  mv "$KUBECONFIG_PATH.tmp" "$KUBECONFIG_PATH"
}

apiserver_ready() {
  curl -fsS --max-time 2 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
    "https://127.0.0.1:$APISERVER_PORT/readyz" >/dev/null
}

etcd_ready() {
  curl -fsS --max-time 2 "http://127.0.0.1:$ETCD_PORT/health" | grep -q '"health":"true"'
}

start_daemon() {
  # start_daemon NAME ARGS...: run detached in its own session, pid in $DIR/NAME.pid.
  local name="$1"
  shift
  setsid "$@" >"$DIR/$name.log" 2>&1 </dev/null &
  echo $! >"$DIR/$name.pid"
}

started_or_die() {
  # started_or_die RC NAME
  case "$1" in
  0) ;;
  2)
    cmd_down_quiet
    die "$2 exited during start-up; last lines of $DIR/$2.log: $(tail -3 "$DIR/$2.log" | tr '\n' ' ')"
    ;;
  *)
    cmd_down_quiet
    die "$2 did not become ready in time; see $DIR/$2.log"
    ;;
  esac
}

running_pids() {
  local name pid
  for name in kube-controller-manager kube-apiserver etcd; do
    pid="$(read_pid "$DIR/$name.pid")"
    if pid_alive "$pid"; then echo "$name:$pid"; fi
  done
}

cmd_up() {
  mkdir -p "$DIR"
  if [ -n "$(running_pids)" ]; then
    echo "the local cluster is already running ($(running_pids | tr '\n' ' ')); 'make cluster-down' stops it" >&2
    echo "$KUBECONFIG_PATH"
    return 0
  fi
  need curl "install curl (Debian: apt-get install curl)"
  require_port_free "$ETCD_PORT" "wanted for etcd" SLUICE_ETCD_PORT
  require_port_free "$ETCD_PEER_PORT" "wanted for etcd peers" SLUICE_ETCD_PORT
  require_port_free "$APISERVER_PORT" "wanted for kube-apiserver" SLUICE_APISERVER_PORT
  cmd_build
  make_pki
  # Each start is a fresh, empty cluster: tests own their state and nothing leaks between runs.
  rm -rf "$DIR/etcd-data"
  log "starting etcd on 127.0.0.1:$ETCD_PORT"
  start_daemon etcd "$BIN/etcd" --data-dir "$DIR/etcd-data" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "default=http://127.0.0.1:$ETCD_PEER_PORT" \
    --unsafe-no-fsync --quota-backend-bytes 2147483648
  local rc=0
  wait_until 60 "etcd" "$DIR/etcd.pid" etcd_ready || rc=$?
  started_or_die "$rc" etcd
  log "starting kube-apiserver $K8S_VERSION on 127.0.0.1:$APISERVER_PORT"
  start_daemon kube-apiserver "$BIN/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" --bind-address 127.0.0.1 \
    --secure-port "$APISERVER_PORT" --cert-dir "$PKI" \
    --tls-cert-file "$PKI/server.crt" --tls-private-key-file "$PKI/server.key" \
    --client-ca-file "$PKI/ca.crt" --service-account-issuer https://kubernetes.default.svc \
    --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
    --service-cluster-ip-range 10.0.0.0/24 --authorization-mode RBAC --allow-privileged=true \
    --enable-admission-plugins PodTolerationRestriction --endpoint-reconciler-type none
  rc=0
  wait_until 120 "kube-apiserver" "$DIR/kube-apiserver.pid" apiserver_ready || rc=$?
  started_or_die "$rc" kube-apiserver
  write_kubeconfig
  log "starting kube-controller-manager (garbage collection, Deployments to ReplicaSets, nodes)"
  start_daemon kube-controller-manager "$BIN/kube-controller-manager" \
    --kubeconfig "$KUBECONFIG_PATH" --authentication-kubeconfig "$KUBECONFIG_PATH" \
    --authorization-kubeconfig "$KUBECONFIG_PATH" --bind-address 127.0.0.1 --secure-port 0 \
    --leader-elect=false --use-service-account-credentials=false \
    --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
    --controllers '*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-route,-persistentvolume-binder,-attachdetach,-csrsigning'
  sleep 1
  pid_alive "$(read_pid "$DIR/kube-controller-manager.pid")" ||
    started_or_die 2 kube-controller-manager
  echo "$KUBECONFIG_PATH"
}

cmd_down_quiet() {
  local name
  for name in kube-controller-manager kube-apiserver etcd; do
    stop_pidfile "$DIR/$name.pid" "$name"
  done
}

cmd_down() {
  if [ -z "$(running_pids)" ]; then
    echo "the local cluster is not running" >&2
  fi
  cmd_down_quiet
}

cmd_status() {
  local pids
  pids="$(running_pids)"
  if [ -n "$pids" ]; then
    echo "local cluster running ($(echo "$pids" | tr '\n' ' ')); kubeconfig: $KUBECONFIG_PATH"
  else
    echo "local cluster not running"
    return 3
  fi
}

case "${1:-}" in
build) cmd_build ;;
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
clean)
  cmd_down_quiet
  rm -rf "$DIR"
  ;;
*)
  echo "usage: $0 build|up|down|status|clean" >&2
  exit 2
  ;;
esac
