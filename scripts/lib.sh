# shellcheck shell=bash
# Shared helpers for the scripts that fetch, build and run Sluice's test infrastructure.
# Sourced, not executed.

# Built tools are cached outside the work tree so a fresh clone on the same machine reuses
# them; runtime state (data dirs, logs, kubeconfig) lives in the git-ignored .cache/.
SLUICE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SLUICE_TOOLS_CACHE="${SLUICE_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice}"
SLUICE_STATE="${SLUICE_STATE:-$SLUICE_ROOT/.cache}"

die() {
  echo "error: $*" >&2
  exit 1
}

log() {
  echo "==> $*" >&2
}

need() {
  # need CMD "what to do when it is missing"
  command -v "$1" >/dev/null 2>&1 || die "'$1' not found on PATH; $2"
}

port_free() {
  # True when nothing listens on 127.0.0.1:$1.
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

require_port_free() {
  port_free "$1" || die "port $1 on 127.0.0.1 is already in use ($2); stop whatever holds it (ss -ltnp 'sport = :$1') or choose another port with $3"
}

pid_alive() {
  [ -n "$1" ] && kill -0 "$1" 2>/dev/null
}

read_pid() {
  [ -f "$1" ] && cat "$1" 2>/dev/null || true
}

stop_pidfile() {
  # stop_pidfile FILE NAME: TERM, wait up to 20 s, then KILL.
  local pid
  pid="$(read_pid "$1")"
  if pid_alive "$pid"; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
      pid_alive "$pid" || break
      sleep 0.2
    done
    if pid_alive "$pid"; then
      kill -9 "$pid" 2>/dev/null || true
    fi
    log "stopped $2 (pid $pid)"
  fi
  rm -f "$1"
}

wait_until() {
  # wait_until SECONDS DESCRIPTION PIDFILE COMMAND...: poll COMMAND until it succeeds.
  local deadline=$((SECONDS + $1)) what="$2" pidfile="$3"
  shift 3
  until "$@" >/dev/null 2>&1; do
    if ! pid_alive "$(read_pid "$pidfile")"; then
      return 2
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      return 1
    fi
    sleep 0.3
  done
  log "$what is ready"
}

ensure_debs() {
  # ensure_debs PACKAGE...: install the Debian packages that are missing (needs root and
  # apt-get); the node and the image are built from the Debian archive.
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  need apt-get "install these Debian packages: ${missing[*]}"
  [ "$(id -u)" = 0 ] || die "these Debian packages are missing and installing them needs root: ${missing[*]}"
  log "installing ${missing[*]} from the Debian archive"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >"$SLUICE_STATE/apt.log" 2>&1 ||
    { apt-get update -q >>"$SLUICE_STATE/apt.log" 2>&1 &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >>"$SLUICE_STATE/apt.log" 2>&1; } ||
    die "apt-get install ${missing[*]} failed; see $SLUICE_STATE/apt.log"
}

# The Kubernetes release the control plane (scripts/cluster.sh) and the node
# (scripts/node.sh) are built from; a kubelet must not be newer than its API server.
K8S_VERSION="${SLUICE_K8S_VERSION:-v1.36.3}"

# Kubernetes' staging modules, pinned to the release's matching v0 versions (the kubernetes
# module's own go.mod points them at ./staging, which a module build cannot follow).
K8S_STAGING_MODULES="api apiextensions-apiserver apimachinery apiserver cli-runtime client-go
cloud-provider cluster-bootstrap code-generator component-base component-helpers
controller-manager cri-api cri-client cri-streaming csi-translation-lib
dynamic-resource-allocation endpointslice externaljwt kms kube-aggregator
kube-controller-manager kube-proxy kube-scheduler kubectl kubelet metrics mount-utils
pod-security-admission sample-apiserver sample-cli-plugin sample-controller streaming"

build_k8s_commands() {
  # build_k8s_commands MODULE_DIR BIN_DIR COMMAND...: build k8s.io/kubernetes/cmd/COMMAND
  # from the Go module proxy through a throwaway module in MODULE_DIR, into BIN_DIR.
  local mod="$1" bin="$2" cmd p
  shift 2
  local staging="v0.${K8S_VERSION#v1.}"
  mkdir -p "$mod" "$bin"
  {
    echo "module sluice.local/k8sbuild"
    echo
    echo "go 1.25"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    for p in $K8S_STAGING_MODULES; do
      echo "replace k8s.io/$p => k8s.io/$p $staging"
    done
  } >"$mod/go.mod"
  {
    echo "//go:build tools"
    echo
    echo "package tools"
    echo
    echo "import ("
    for cmd in "$@"; do
      echo "	_ \"k8s.io/kubernetes/cmd/$cmd\""
    done
    echo ")"
  } >"$mod/tools.go"
  local ldflags="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags="$ldflags -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=${staging#v0.}"
  done
  (
    cd "$mod" || exit 1
    log "resolving k8s.io/kubernetes $K8S_VERSION modules (first time only)"
    GOFLAGS=-mod=mod go mod tidy -e >/dev/null 2>"$mod/tidy.log" || true
    GOFLAGS=-mod=mod go get "k8s.io/kubernetes@$K8S_VERSION" >>"$mod/tidy.log" 2>&1 ||
      die "could not resolve k8s.io/kubernetes $K8S_VERSION; see $mod/tidy.log"
    for cmd in "$@"; do
      log "building $cmd $K8S_VERSION (several minutes on a cold cache)"
      CGO_ENABLED=0 GOFLAGS=-mod=mod nice -n 19 go build -trimpath -ldflags "$ldflags" \
        -o "$bin/$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd" 2>"$mod/build-$cmd.log" ||
        die "building $cmd failed; see $mod/build-$cmd.log"
      mv "$bin/$cmd.tmp" "$bin/$cmd"
    done
  )
}

maven_jars_ok() {
  # maven_jars_ok LIBS JAR_GLOB...: the fetched jars are complete and open as zips (a jar
  # that does not means a corrupt cache).
  local libs="$1" jar
  shift
  [ -f "$libs/.complete" ] || return 1
  for jar in "$@"; do
    [ -f "$jar" ] && unzip -tq "$jar" >/dev/null 2>&1 || return 1
  done
}

fetch_maven_jars() {
  # fetch_maven_jars WHAT POM LIBS LOG JAVA_HINT: copy POM's dependencies into LIBS with
  # Maven (LIBS is marked complete at the end), replacing an incomplete or corrupt cache.
  local what="$1" pom="$2" libs="$3" logfile="$4" java_hint="$5"
  if [ -d "$libs" ]; then
    log "cached $what jars in $libs are incomplete or corrupt; fetching them again"
    rm -rf "$libs"
  fi
  need java "$java_hint"
  need mvn "install Maven (Debian: apt-get install maven) to fetch the $what jars"
  mkdir -p "$libs"
  mvn -q -B -f "$pom" dependency:copy-dependencies -DoutputDirectory="$libs" \
    >"$logfile" 2>&1 || die "fetching $what jars failed; see $logfile"
  touch "$libs/.complete"
}
