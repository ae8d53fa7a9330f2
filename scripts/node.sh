#!/usr/bin/env bash
# A real Kubernetes node next to the local control plane (scripts/cluster.sh): containerd and
# runc from the Debian archive, the kubelet and kube-scheduler built from the Go module proxy
# like the API server, pods on a bridge network (the Debian CNI plugins). No Docker.
#
#   scripts/node.sh build        install / build (or reuse) everything the node needs
#   scripts/node.sh up           join the node to the running cluster; waits until Ready and
#                                prints the machine's address on the pod network
#   scripts/node.sh down         stop every pod, the kubelet, the scheduler and containerd
#   scripts/node.sh status       say whether it runs
#   scripts/node.sh admit NS     let the pods of namespace NS run on the node (it is tainted)
#   scripts/node.sh import TAR   load an image archive (docker-archive) into the node
#   scripts/node.sh has-image R  exit 0 when the node holds image reference R
#   scripts/node.sh check        say whether this machine can run the node at all
#   scripts/node.sh check-cluster  say whether the cluster can take the node
#
# What the machine needs: root, cgroups (v1 or v2) with the memory, cpu and pids
# controllers, overlayfs, network namespaces, veth and bridge devices, iptables (nf_tables
# or legacy) and unshare(1). On cgroup v1 the kubelet must be told `failCgroupV1: false`,
# which this does; Kubernetes has deprecated cgroup v1.
#
# Pods reach the node through the bridge's gateway (10.89.0.1 by default); the cluster's
# `kubernetes` Service address (10.0.0.1:443) is forwarded to the API server, and TCP to
# 127.0.0.1 on SLUICE_NODE_HOST_PORTS inside a pod reaches the node's 127.0.0.1 (see
# scripts/node/cni-host-ports: the local broker advertises 127.0.0.1).
#
# Environment: SLUICE_NODE_CLUSTER_DIR (the cluster's state folder with kubeconfig and pki/;
# default .cache/local-cluster of this checkout), SLUICE_NODE_HOST_PORTS (default "19092 8080":
# the quickstart's broker and function),
# SLUICE_NODE_POD_SUBNET (default 10.89.0.0/24), SLUICE_NODE_KUBELET_PORT (default 20250).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

NODE_NAME=sluice-node
BIN="$SLUICE_TOOLS_CACHE/k8s-$K8S_VERSION-node/bin"
DIR="$SLUICE_STATE/node"
CLUSTER_DIR="${SLUICE_NODE_CLUSTER_DIR:-$SLUICE_STATE/local-cluster}"
CLUSTER_PKI="$CLUSTER_DIR/pki"
CLUSTER_KUBECONFIG="$CLUSTER_DIR/kubeconfig"
HOST_PORTS="${SLUICE_NODE_HOST_PORTS:-19092 8080}"
POD_SUBNET="${SLUICE_NODE_POD_SUBNET:-10.89.0.0/24}"
POD_GATEWAY="${POD_SUBNET%.*}.1"
BRIDGE=sluice0
KUBELET_PORT="${SLUICE_NODE_KUBELET_PORT:-20250}"
KUBELET_HEALTHZ_PORT=$((KUBELET_PORT - 2))
# The `kubernetes` Service: the first address of scripts/cluster.sh's service range.
SERVICE_IP=10.0.0.1
NAT_CHAIN=SLUICE-NODE
TAINT_KEY=sluice.dev/local-node
PAUSE_IMAGE="sluice.local/pause:3.10"
PAUSE_TAR="$SLUICE_TOOLS_CACHE/node-images/pause-3.10.tar"
SOCKET="$DIR/containerd.sock"
DEBS="containerd runc containernetworking-plugins iptables gcc libc6-dev umoci skopeo"

ctr_() {
  ctr --address "$SOCKET" --namespace k8s.io "$@"
}

cmd_check() {
  local problems=()
  [ "$(id -u)" = 0 ] || problems+=("not root")
  [ "$(uname -s)" = Linux ] || problems+=("not Linux")
  grep -qw overlay /proc/filesystems || problems+=("no overlayfs in /proc/filesystems")
  if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    for c in cpu memory pids; do
      grep -qw "$c" /sys/fs/cgroup/cgroup.controllers || problems+=("cgroup v2 lacks the $c controller")
    done
  else
    for c in cpu cpuacct cpuset memory pids; do
      [ -d "/sys/fs/cgroup/$c" ] || problems+=("cgroup v1 hierarchy /sys/fs/cgroup/$c is not mounted")
    done
  fi
  command -v unshare >/dev/null || problems+=("no unshare(1)")
  [ -e /proc/self/ns/net ] || problems+=("no network namespaces")
  if [ "${#problems[@]}" -gt 0 ]; then
    echo "this machine cannot run the node: ${problems[*]}" >&2
    return 1
  fi
}

has_capability() {
  # has_capability NUMBER: whether this process holds that capability (24: CAP_SYS_RESOURCE).
  local effective
  effective="$(sed -n 's/^CapEff:[[:space:]]*//p' /proc/self/status)"
  (((0x$effective >> $1) & 1))
}

binaries_ok() {
  [ -x "$BIN/kubelet" ] && [ -x "$BIN/kube-scheduler" ] &&
    "$BIN/kubelet" --version >/dev/null 2>&1 && "$BIN/kube-scheduler" --version >/dev/null 2>&1
}

build_pause_image() {
  # The pod sandbox image, made here: there is no registry to pull registry.k8s.io/pause from.
  [ -s "$PAUSE_TAR" ] && return 0
  local work
  work="$(mktemp -d)"
  local source
  source="$(go env GOMODCACHE)/k8s.io/kubernetes@$K8S_VERSION/build/pause/linux/pause.c"
  [ -f "$source" ] || die "pause.c not found at $source; build the kubelet first"
  gcc -Os -Wall -Werror -static -DVERSION="$K8S_VERSION" -o "$work/pause" "$source"
  strip "$work/pause"
  umoci init --layout "$work/oci"
  umoci new --image "$work/oci:pause"
  umoci insert --image "$work/oci:pause" "$work/pause" /pause
  umoci config --image "$work/oci:pause" --os linux --architecture amd64 \
    --config.entrypoint /pause --config.user 65535:65535
  mkdir -p "$(dirname "$PAUSE_TAR")"
  skopeo copy --quiet "oci:$work/oci:pause" "docker-archive:$PAUSE_TAR.tmp:$PAUSE_IMAGE"
  mv "$PAUSE_TAR.tmp" "$PAUSE_TAR"
  rm -rf "$work"
}

cmd_build() {
  cmd_check
  # shellcheck disable=SC2086 # a list of package names
  ensure_debs $DEBS
  if ! binaries_ok; then
    need go "install Go 1.25 or newer to build the kubelet"
    rm -f "$BIN/kubelet" "$BIN/kube-scheduler"
    build_k8s_commands "$SLUICE_TOOLS_CACHE/build/k8s-$K8S_VERSION-node" "$BIN" kubelet kube-scheduler
    binaries_ok || die "the node's binaries in $BIN do not run; delete that folder and retry"
  fi
  build_pause_image
}

# --- certificates and kubeconfigs -------------------------------------------------------

sign_client_cert() {
  # sign_client_cert NAME SUBJECT: a client certificate from the cluster's CA.
  local name="$1" subject="$2"
  [ -s "$DIR/pki/$name.crt" ] && return 0
  openssl req -newkey rsa:2048 -nodes -subj "$subject" -keyout "$DIR/pki/$name.key" \
    -out "$DIR/pki/$name.csr" 2>/dev/null
  openssl x509 -req -in "$DIR/pki/$name.csr" -CA "$CLUSTER_PKI/ca.crt" -CAkey "$CLUSTER_PKI/ca.key" \
    -CAcreateserial -days 3650 -out "$DIR/pki/$name.crt" 2>/dev/null
}

write_kubeconfig() {
  # write_kubeconfig NAME: a kubeconfig for the client certificate NAME.
  local server
  server="$(sed -n 's/^ *server: *//p' "$CLUSTER_KUBECONFIG" | head -1)"
  cat >"$DIR/$1.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster: {server: "$server", certificate-authority: "$CLUSTER_PKI/ca.crt"}
users:
- name: $1
  user: {client-certificate: "$DIR/pki/$1.crt", client-key: "$DIR/pki/$1.key"}
contexts:
- name: local
  context: {cluster: local, user: $1}
current-context: local
EOF
}

api() {
  # api METHOD PATH [BODY [merge]]: the API server, as the cluster's administrator.
  local server
  server="$(sed -n 's/^ *server: *//p' "$CLUSTER_KUBECONFIG" | head -1)"
  curl -sS --max-time 10 --cacert "$CLUSTER_PKI/ca.crt" --cert "$CLUSTER_PKI/admin.crt" \
    --key "$CLUSTER_PKI/admin.key" -X "$1" \
    -H "Content-Type: application/${4:+$4-patch+}json" ${3:+--data "$3"} "$server$2"
}

check_cluster() {
  [ -f "$CLUSTER_KUBECONFIG" ] && [ -f "$CLUSTER_PKI/ca.key" ] ||
    die "no local cluster in $CLUSTER_DIR; start it first (make cluster-up) or set SLUICE_NODE_CLUSTER_DIR"
  api GET /readyz >/dev/null || die "the API server of $CLUSTER_KUBECONFIG does not answer; start it (make cluster-up)"
  # Pods use their in-cluster configuration: https://10.0.0.1 must be in the server's
  # certificate, and the ServiceAccount admission plugin must give them a token.
  openssl x509 -in "$CLUSTER_PKI/server.crt" -noout -ext subjectAltName 2>/dev/null | grep -q "IP Address:$SERVICE_IP" ||
    die "the cluster's certificate lacks IP $SERVICE_IP (made by an older scripts/cluster.sh); restart it: make cluster-down cluster-up"
}

bind_node_roles() {
  # The kubelet authenticates as system:node:NAME in group system:nodes; scripts/cluster.sh
  # authorizes with RBAC only, so the group gets the built-in system:node role.
  local binding='{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRoleBinding",
    "metadata":{"name":"sluice-local-nodes"},
    "roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":"system:node"},
    "subjects":[{"apiGroup":"rbac.authorization.k8s.io","kind":"Group","name":"system:nodes"}]}'
  api POST /apis/rbac.authorization.k8s.io/v1/clusterrolebindings "$binding" >/dev/null
}

# --- network ----------------------------------------------------------------------------

network_up() {
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
    ip addr add "$POD_GATEWAY/${POD_SUBNET#*/}" dev "$BRIDGE"
  fi
  ip link set "$BRIDGE" up
  # Packets from pods may be rewritten to the node's 127.0.0.1 (below).
  sysctl -qw "net.ipv4.conf.$BRIDGE.route_localnet=1"
  sysctl -qw net.ipv4.ip_forward=1
  iptables -t nat -N "$NAT_CHAIN" 2>/dev/null || iptables -t nat -F "$NAT_CHAIN"
  iptables -t nat -C PREROUTING -i "$BRIDGE" -j "$NAT_CHAIN" 2>/dev/null ||
    iptables -t nat -A PREROUTING -i "$BRIDGE" -j "$NAT_CHAIN"
  local apiserver_port
  apiserver_port="$(sed -n 's/^ *server: *https:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$CLUSTER_KUBECONFIG" | head -1)"
  # What kube-proxy would do for the one Service pods need: `kubernetes`.
  iptables -t nat -A "$NAT_CHAIN" -d "$SERVICE_IP/32" -p tcp --dport 443 \
    -j DNAT --to-destination "127.0.0.1:$apiserver_port"
  local port
  for port in $HOST_PORTS; do
    iptables -t nat -A "$NAT_CHAIN" -d "$POD_GATEWAY/32" -p tcp --dport "$port" \
      -j DNAT --to-destination "127.0.0.1:$port"
  done
  mkdir -p "$DIR/cni/bin" "$DIR/cni/net.d" "$DIR/cni/ipam"
  local plugin
  for plugin in bridge host-local loopback portmap; do
    ln -sf "/usr/lib/cni/$plugin" "$DIR/cni/bin/$plugin"
  done
  ln -sf "$SLUICE_ROOT/scripts/node/cni-host-ports" "$DIR/cni/bin/sluice-host-ports"
  local ports_json
  ports_json="[$(echo "$HOST_PORTS" | tr -s ' ' ',')]"
  cat >"$DIR/cni/net.d/10-sluice.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "sluice-pods",
  "plugins": [
    {
      "type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
      "ipam": {
        "type": "host-local", "dataDir": "$DIR/cni/ipam",
        "ranges": [[{"subnet": "$POD_SUBNET", "gateway": "$POD_GATEWAY"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}},
    {"type": "sluice-host-ports", "gateway": "$POD_GATEWAY", "ports": $ports_json}
  ]
}
EOF
}

network_down() {
  iptables -t nat -D PREROUTING -i "$BRIDGE" -j "$NAT_CHAIN" 2>/dev/null || true
  iptables -t nat -F "$NAT_CHAIN" 2>/dev/null || true
  iptables -t nat -X "$NAT_CHAIN" 2>/dev/null || true
  ip link del "$BRIDGE" 2>/dev/null || true
  rm -rf "$DIR/cni/ipam"
}

# --- containerd and the kubelet ---------------------------------------------------------

write_containerd_config() {
  local RESTRICT_OOM=false
  has_capability 24 || RESTRICT_OOM=true
  cat >"$DIR/containerd.toml" <<EOF
version = 2
root = "$DIR/containerd/root"
state = "$DIR/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "$SOCKET"
[ttrpc]
  address = "$SOCKET.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$DIR/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  enable_selinux = false
  netns_mounts_under_state_dir = true
  # Sandboxes without CAP_SYS_RESOURCE cannot lower an oom_score_adj (runc fails with
  # "failed to update /proc/self/oom_score_adj: Permission denied"); this keeps the pods'
  # scores at or above containerd's own.
  restrict_oom_score_adj = $RESTRICT_OOM
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "${SLUICE_NODE_RUNC:-runc}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$DIR/cni/bin"
    conf_dir = "$DIR/cni/net.d"
EOF
}

write_kubelet_config() {
  local cgroup_v1=false
  [ -f /sys/fs/cgroup/cgroup.controllers ] || cgroup_v1=true
  cat >"$DIR/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://$SOCKET
cgroupDriver: cgroupfs
# Kubernetes refuses cgroup v1 unless told otherwise; this machine has it: $cgroup_v1.
failCgroupV1: false
address: 127.0.0.1
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HEALTHZ_PORT
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: "$CLUSTER_PKI/ca.crt"}
authorization: {mode: AlwaysAllow}
podLogsDir: $DIR/pod-logs
failSwapOn: false
# A shared development machine: evict only when it is really full.
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
resolvConf: /etc/resolv.conf
# The kubelet's own score; lowering it needs CAP_SYS_RESOURCE, which some sandboxes lack.
oomScoreAdj: 0
registerNode: true
# Only pods of namespaces that opt in (scripts/node.sh admit NAMESPACE) run here; the rest
# stay unscheduled, as on a control plane without nodes.
registerWithTaints: [{key: "$TAINT_KEY", effect: NoSchedule}]
maxPods: 30
EOF
}

inner_run() {
  # Runs inside the node's own mount namespace (see cmd_up): every mount the node makes
  # (container root filesystems, volumes, network namespaces) goes when it stops.
  containerd --config "$DIR/containerd.toml" >"$DIR/containerd.log" 2>&1 &
  local containerd_pid=$!
  for _ in $(seq 1 100); do
    ctr_ version >/dev/null 2>&1 && break
    kill -0 "$containerd_pid" 2>/dev/null || { echo "containerd exited" >&2; exit 1; }
    sleep 0.2
  done
  ctr_ images ls -q | grep -qx "$PAUSE_IMAGE" || ctr_ images import "$PAUSE_TAR" >/dev/null
  "$BIN/kubelet" --config "$DIR/kubelet.yaml" --kubeconfig "$DIR/kubelet.kubeconfig" \
    --root-dir "$DIR/kubelet" --hostname-override "$NODE_NAME" >"$DIR/kubelet.log" 2>&1 &
  local kubelet_pid=$!
  # shellcheck disable=SC2064 # the pids are known now
  trap "kill $kubelet_pid 2>/dev/null; wait $kubelet_pid; kill $containerd_pid 2>/dev/null; wait $containerd_pid; exit 0" TERM INT
  wait -n "$kubelet_pid" "$containerd_pid" || true
  kill "$kubelet_pid" "$containerd_pid" 2>/dev/null || true
  wait
}

node_ready() {
  api GET "/api/v1/nodes/$NODE_NAME" | python3 -c 'import json, sys
node = json.load(sys.stdin)
ready = [c for c in node.get("status", {}).get("conditions", []) if c["type"] == "Ready"]
sys.exit(0 if ready and ready[0]["status"] == "True" else 1)'
}

node_schedulable() {
  # The controller-manager's node lifecycle controller lifts the not-ready taint the kubelet
  # registers with.
  ! api GET "/api/v1/nodes/$NODE_NAME" | grep -q '"node.kubernetes.io/not-ready"'
}

running_pids() {
  local name pid
  for name in scheduler node; do
    pid="$(read_pid "$DIR/$name.pid")"
    if pid_alive "$pid"; then echo "$name:$pid"; fi
  done
}

cmd_up() {
  mkdir -p "$DIR"
  if [ -n "$(running_pids)" ]; then
    echo "the node is already running ($(running_pids | tr '\n' ' ')); 'make node-down' stops it" >&2
    echo "$POD_GATEWAY"
    return 0
  fi
  cmd_build
  check_cluster
  require_port_free "$KUBELET_PORT" "wanted for the kubelet" SLUICE_NODE_KUBELET_PORT
  require_port_free "$KUBELET_HEALTHZ_PORT" "wanted for the kubelet's health check" SLUICE_NODE_KUBELET_PORT
  local started=$SECONDS
  mkdir -p "$DIR/pki"
  sign_client_cert kubelet "/O=system:nodes/CN=system:node:$NODE_NAME"
  sign_client_cert scheduler "/CN=system:kube-scheduler"
  write_kubeconfig kubelet
  write_kubeconfig scheduler
  bind_node_roles
  network_up
  write_containerd_config
  write_kubelet_config
  log "starting containerd and the kubelet $K8S_VERSION (node $NODE_NAME, log: $DIR/kubelet.log)"
  setsid unshare --mount --propagation private -- "$0" inner-run >"$DIR/node.log" 2>&1 </dev/null &
  echo $! >"$DIR/node.pid"
  local rc=0
  wait_until 120 "node $NODE_NAME" "$DIR/node.pid" node_ready || rc=$?
  if [ "$rc" != 0 ]; then
    local why
    why="$(grep -hE ' E[0-9]{4} |level=error|level=fatal' "$DIR/kubelet.log" "$DIR/containerd.log" 2>/dev/null | tail -3)"
    cmd_down_quiet
    die "the node did not become Ready; last errors: ${why:-none logged} (see $DIR/kubelet.log, $DIR/containerd.log, $DIR/node.log)"
  fi
  rc=0
  wait_until 30 "scheduling on node $NODE_NAME" "$DIR/node.pid" node_schedulable || rc=$?
  if [ "$rc" != 0 ]; then
    cmd_down_quiet
    die "the node kept its not-ready taint: the cluster's kube-controller-manager does not run the node lifecycle controller (an older scripts/cluster.sh); restart it: make cluster-down cluster-up"
  fi
  log "starting kube-scheduler"
  setsid "$BIN/kube-scheduler" --kubeconfig "$DIR/scheduler.kubeconfig" \
    --authentication-kubeconfig "$DIR/scheduler.kubeconfig" \
    --authorization-kubeconfig "$DIR/scheduler.kubeconfig" --leader-elect=false \
    --bind-address 127.0.0.1 --secure-port 0 >"$DIR/scheduler.log" 2>&1 </dev/null &
  echo $! >"$DIR/scheduler.pid"
  sleep 1
  pid_alive "$(read_pid "$DIR/scheduler.pid")" || {
    cmd_down_quiet
    die "kube-scheduler exited; last lines of $DIR/scheduler.log: $(tail -3 "$DIR/scheduler.log" | tr '\n' ' ')"
  }
  log "node $NODE_NAME is Ready after $((SECONDS - started)) s; pods reach this machine at $POD_GATEWAY"
  echo "$POD_GATEWAY"
}

kill_containers() {
  # The shims (and so the containers) outlive containerd: stop them by the socket they serve.
  local cmdline pid
  for cmdline in /proc/[0-9]*/cmdline; do
    pid="${cmdline#/proc/}"
    pid="${pid%/cmdline}"
    case "$(cat "/proc/$pid/comm" 2>/dev/null)" in
    containerd-shim*)
      if grep -qsa -- "$SOCKET" "$cmdline"; then kill -KILL "$pid" 2>/dev/null || true; fi
      ;;
    esac
  done
  # Containers whose shim is gone still sit in the node's cgroups.
  local cgroup_dir
  for cgroup_dir in /sys/fs/cgroup/pids/kubepods /sys/fs/cgroup/kubepods; do
    [ -d "$cgroup_dir" ] || continue
    find "$cgroup_dir" -name cgroup.procs -exec cat {} + 2>/dev/null | while read -r pid; do
      kill -KILL "$pid" 2>/dev/null || true
    done
  done
}

remove_cgroups() {
  local root
  for root in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
    [ -d "$root" ] || continue
    find "$root" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
}

cmd_down_quiet() {
  stop_pidfile "$DIR/scheduler.pid" kube-scheduler
  stop_pidfile "$DIR/node.pid" "containerd and the kubelet"
  kill_containers
  sleep 0.5
  remove_cgroups
  network_down
  if api GET "/api/v1/nodes/$NODE_NAME" 2>/dev/null | grep -q '"kind": "Node"'; then
    api DELETE "/api/v1/nodes/$NODE_NAME" >/dev/null 2>&1 || true
  fi
  # Pods' state (containers, volumes) is not kept between runs; images are (import is slow).
  rm -rf "$DIR/kubelet" "$DIR/pod-logs" "$DIR/containerd/state"
}

cmd_down() {
  if [ -z "$(running_pids)" ]; then
    echo "the node is not running" >&2
  fi
  cmd_down_quiet
}

cmd_status() {
  local pids
  pids="$(running_pids)"
  if [ -n "$pids" ]; then
    echo "node $NODE_NAME running ($(echo "$pids" | tr '\n' ' '))"
  else
    echo "node not running"
    return 3
  fi
}

cmd_admit() {
  # Pods of the namespace tolerate the node's taint (the PodTolerationRestriction admission
  # plugin adds the namespace's default tolerations to each pod).
  [ -n "${1:-}" ] || die "usage: $0 admit NAMESPACE"
  local patch
  patch="$(python3 -c 'import json, sys
toleration = {"key": sys.argv[1], "operator": "Exists", "effect": "NoSchedule"}
annotation = {"scheduler.alpha.kubernetes.io/defaultTolerations": json.dumps([toleration])}
print(json.dumps({"metadata": {"annotations": annotation}}))' "$TAINT_KEY")"
  api GET "/api/v1/namespaces/$1" | grep -q '"kind": "Namespace"' ||
    api POST /api/v1/namespaces "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"$1\"}}" >/dev/null
  api PATCH "/api/v1/namespaces/$1" "$patch" merge >/dev/null
}

cmd_import() {
  [ -f "${1:-}" ] || die "usage: $0 import ARCHIVE.tar"
  pid_alive "$(read_pid "$DIR/node.pid")" || die "the node is not running; make node-up"
  ctr_ images import "$1" >/dev/null
}

case "${1:-}" in
check) cmd_check ;;
check-cluster) check_cluster ;;
build) cmd_build ;;
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
import) cmd_import "${2:-}" ;;
admit) check_cluster && cmd_admit "${2:-}" ;;
has-image) ctr_ images ls -q 2>/dev/null | grep -qx "${2:-}" ;;
inner-run) inner_run ;;
clean)
  cmd_down_quiet
  rm -rf "$DIR"
  ;;
*)
  echo "usage: $0 check|build|up|down|status|import TAR|has-image REF|clean" >&2
  exit 2
  ;;
esac
