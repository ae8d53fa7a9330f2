#!/usr/bin/env bash
# End-to-end run on a real cluster made with kind (needs Docker, kind, kubectl, helm).
# It builds the image, installs the chart, runs a one-node Kafka and a function in the
# cluster, applies a Connector, produces records, checks the function received them, then
# deletes the Connector and checks that its objects are gone.
#
#   e2e/kind.sh            run, then delete the cluster
#   KEEP_CLUSTER=1 e2e/kind.sh
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CLUSTER="${CLUSTER:-sluice-e2e}"
IMAGE="${IMAGE:-sluice:e2e}"
KAFKA_IMAGE="${KAFKA_IMAGE:-apache/kafka:4.1.1}"
NS=sluice-e2e

step() { echo "==> $*"; }
fail() {
  echo "FAILED: $*" >&2
  kubectl -n "$NS" get all,connectors >&2 || true
  exit 1
}

for tool in docker kind kubectl helm; do
  command -v "$tool" >/dev/null || { echo "error: $tool is needed for the kind e2e run" >&2; exit 1; }
done

# shellcheck disable=SC2329 # called by the EXIT trap
cleanup() {
  if [ -z "${KEEP_CLUSTER:-}" ]; then
    kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

step "creating kind cluster $CLUSTER"
kind create cluster --name "$CLUSTER" --wait 120s
step "building and loading $IMAGE"
docker build -t "$IMAGE" "$ROOT"
kind load docker-image "$IMAGE" --name "$CLUSTER"

step "installing the chart"
helm install sluice "$ROOT/charts/sluice" --namespace sluice-system --create-namespace \
  --set image.repository="${IMAGE%%:*}" --set image.tag="${IMAGE##*:}" --wait --timeout 180s

step "starting Kafka and the function in $NS"
kubectl create namespace "$NS"
kubectl -n "$NS" create configmap function-server --from-file="$ROOT/testkit/function_server.py"
kubectl -n "$NS" apply -f - <<YAML
apiVersion: apps/v1
kind: Deployment
metadata: {name: kafka}
spec:
  selector: {matchLabels: {app: kafka}}
  template:
    metadata: {labels: {app: kafka}}
    spec:
      containers:
        - name: kafka
          image: $KAFKA_IMAGE
          env:
            - {name: KAFKA_NODE_ID, value: "1"}
            - {name: KAFKA_PROCESS_ROLES, value: "broker,controller"}
            - {name: KAFKA_LISTENERS, value: "PLAINTEXT://:9092,CONTROLLER://:9093"}
            - {name: KAFKA_ADVERTISED_LISTENERS, value: "PLAINTEXT://kafka.$NS.svc:9092"}
            - {name: KAFKA_CONTROLLER_LISTENER_NAMES, value: CONTROLLER}
            - {name: KAFKA_CONTROLLER_QUORUM_VOTERS, value: "1@localhost:9093"}
            - {name: KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR, value: "1"}
            - {name: KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS, value: "0"}
---
apiVersion: v1
kind: Service
metadata: {name: kafka}
spec:
  selector: {app: kafka}
  ports: [{port: 9092}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: function}
spec:
  selector: {matchLabels: {app: function}}
  template:
    metadata: {labels: {app: function}}
    spec:
      containers:
        - name: function
          image: $IMAGE
          # The function server is test support, not in the image: it comes in a ConfigMap.
          command: [python, /testkit/function_server.py, --host, 0.0.0.0, --port, "8080", --print]
          volumeMounts: [{name: testkit, mountPath: /testkit}]
      volumes: [{name: testkit, configMap: {name: function-server}}]
---
apiVersion: v1
kind: Service
metadata: {name: function}
spec:
  selector: {app: function}
  ports: [{port: 80, targetPort: 8080}]
YAML
kubectl -n "$NS" rollout status deployment/kafka --timeout 180s
kubectl -n "$NS" rollout status deployment/function --timeout 120s
kubectl -n "$NS" exec deployment/kafka -- /opt/kafka/bin/kafka-topics.sh \
  --bootstrap-server localhost:9092 --create --topic e2e --partitions 3

step "applying a Connector"
kubectl -n "$NS" apply -f - <<YAML
apiVersion: sluice.dev/v1alpha1
kind: Connector
metadata: {name: e2e}
spec:
  source: {kafka: {bootstrapServers: ["kafka.$NS.svc:9092"], topics: [e2e], initialOffset: earliest}}
  window: {maxMessages: 10, maxInterval: 1s}
  sink: {ref: {apiVersion: v1, kind: Service, name: function}}
YAML
kubectl -n "$NS" wait connector/e2e --for=condition=Ready --timeout 180s || fail "Connector not Ready"
[ "$(kubectl -n "$NS" get deployment e2e -o jsonpath='{.spec.replicas}')" = 3 ] ||
  fail "expected 3 runtime replicas for 3 partitions"

step "producing 30 records"
seq 1 30 | sed 's/.*/{"n": &}/' | kubectl -n "$NS" exec -i deployment/kafka -- \
  /opt/kafka/bin/kafka-console-producer.sh --bootstrap-server localhost:9092 --topic e2e
for _ in $(seq 1 60); do
  received="$(kubectl -n "$NS" logs deployment/function | grep -c '"n":' || true)"
  [ "$received" -ge 30 ] && break
  sleep 2
done
[ "$received" -ge 30 ] || fail "the function received $received of 30 records"

step "deleting the Connector"
kubectl -n "$NS" delete connector e2e --wait
for _ in $(seq 1 30); do
  if ! kubectl -n "$NS" get deployment e2e configmap e2e >/dev/null 2>&1; then
    step "PASS: delivered 30 records and cleaned up"
    exit 0
  fi
  sleep 2
done
fail "the Connector's Deployment or ConfigMap was not garbage-collected"
