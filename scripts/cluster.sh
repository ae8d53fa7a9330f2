#!/usr/bin/env bash
# A local Kubernetes control plane for tests: etcd + kube-apiserver + kube-controller-manager
# on loopback, built once from the Go module proxy and cached. No kubelet: pods never run.
#
#   scripts/cluster.sh build   build (or reuse) the binaries
#   scripts/cluster.sh up      start them; prints the kubeconfig path
#   scripts/cluster.sh down    stop them
#   scripts/cluster.sh status  say whether it runs
#
# Environment: SLUICE_K8S_VERSION, SLUICE_ETCD_VERSION, SLUICE_APISERVER_PORT (default 16443),
# SLUICE_ETCD_PORT (default 12379).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

K8S_VERSION="${SLUICE_K8S_VERSION:-v1.36.3}"
ETCD_VERSION="${SLUICE_ETCD_VERSION:-v3.6.16}"
APISERVER_PORT="${SLUICE_APISERVER_PORT:-16443}"
ETCD_PORT="${SLUICE_ETCD_PORT:-12379}"
ETCD_PEER_PORT=$((ETCD_PORT + 1))

BIN="$SLUICE_TOOLS_CACHE/k8s-$K8S_VERSION-etcd-$ETCD_VERSION/bin"
DIR="$SLUICE_STATE/local-cluster"
KUBECONFIG_PATH="$DIR/kubeconfig"

STAGING_MODULES="api apiextensions-apiserver apimachinery apiserver cli-runtime client-go
cloud-provider cluster-bootstrap code-generator component-base component-helpers
controller-manager cri-api cri-client cri-streaming csi-translation-lib
dynamic-resource-allocation endpointslice externaljwt kms kube-aggregator
kube-controller-manager kube-proxy kube-scheduler kubectl kubelet metrics mount-utils
pod-security-admission sample-apiserver sample-cli-plugin sample-controller streaming"

binaries_ok() {
  for b in kube-apiserver kube-controller-manager etcd; do
    [ -x "$BIN/$b" ] || return 1
  done
  # A truncated or corrupt binary fails to print its version.
  "$BIN/etcd" --version >/dev/null 2>&1 && "$BIN/kube-apiserver" --version >/dev/null 2>&1
}

build_kubernetes() {
  local mod="$SLUICE_TOOLS_CACHE/build/k8s-$K8S_VERSION"
  local staging="v0.${K8S_VERSION#v1.}"
  mkdir -p "$mod"
  {
    echo "module sluice.local/k8sbuild"
    echo
    echo "go 1.25"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    for m in $STAGING_MODULES; do
      echo "replace k8s.io/$m => k8s.io/$m $staging"
    done
  } >"$mod/go.mod"
  cat >"$mod/tools.go" <<'EOF'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
)
EOF
  local ldflags="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags="$ldflags -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=${staging#v0.}"
  done
  (
    cd "$mod"
    log "resolving k8s.io/kubernetes $K8S_VERSION modules (first time only)"
    GOFLAGS=-mod=mod go mod tidy -e >/dev/null 2>"$mod/tidy.log" || true
    GOFLAGS=-mod=mod go get "k8s.io/kubernetes@$K8S_VERSION" >>"$mod/tidy.log" 2>&1 ||
      die "could not resolve k8s.io/kubernetes $K8S_VERSION; see $mod/tidy.log"
    for cmd in kube-apiserver kube-controller-manager; do
      log "building $cmd $K8S_VERSION (several minutes on a cold cache)"
      CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "$ldflags" \
        -o "$BIN/$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd" 2>"$mod/build-$cmd.log" ||
        die "building $cmd failed; see $mod/build-$cmd.log"
      mv "$BIN/$cmd.tmp" "$BIN/$cmd"
    done
  )
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
  { [ -x "$BIN/kube-apiserver" ] && [ -x "$BIN/kube-controller-manager" ]; } || build_kubernetes
  binaries_ok || die "control-plane binaries in $BIN do not run; delete that folder and retry"
}

case "${1:-}" in
build) cmd_build ;;
*)
  echo "usage: $0 build|up|down|status" >&2
  exit 2
  ;;
esac
