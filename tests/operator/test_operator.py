"""The operator on the real API server and the real broker: one operator run watches this
module's namespace, and each test drives its own Connectors and topics through it."""

from __future__ import annotations

import math
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import pytest
import yaml
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewPartitions

from sluice_operator.builders import CONFIG_HASH_ANNOTATION, runtime_name, selector_string
from sluice_operator.kube import Kube, KubeError, resource_path
from sluice_operator.reconcile import connector_path
from sluice_runtime.config import load_connector
from testkit.operator_harness import (
    OperatorThread,
    condition_of,
    connector_body,
    create_connector,
    eventually,
    mark_pods_ready,
    patch_spec,
)
from tests.support import produce

pytestmark = pytest.mark.integration

SINK = "http://function.example/"
OWNED = {
    "ConfigMap": ("v1", "configmaps"),
    "Deployment": ("apps/v1", "deployments"),
    "Service": ("v1", "services"),
}


@pytest.fixture(scope="module")
def ns(kube: Kube) -> Iterator[str]:
    name = f"op-{uuid.uuid4().hex[:8]}"
    kube.request("POST", "/api/v1/namespaces", body={"metadata": {"name": name}})
    yield name
    kube.request("DELETE", f"/api/v1/namespaces/{name}")


@pytest.fixture(scope="module")
def operator(kubeconfig: str, ns: str, kube: Kube) -> Iterator[OperatorThread]:
    with OperatorThread(kubeconfig, [ns]) as running:
        yield running


@pytest.fixture
def admin(kafka_bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": kafka_bootstrap})


def owned(kube: Kube, ns: str, name: str, kind: str) -> dict[str, Any] | None:
    api, plural = OWNED[kind]
    return kube.get(resource_path(api, plural, ns, runtime_name(name)))


def _exists(kube: Kube, ns: str, name: str, kind: str) -> bool:
    return owned(kube, ns, name, kind) is not None


def connector(kube: Kube, ns: str, name: str) -> dict[str, Any]:
    found = kube.get(connector_path(ns, name))
    assert found is not None
    return found


def commit_the_ends(bootstrap: str, group: str, topic: str, partitions: int) -> None:
    """Commit, as ``group``, the end of each of ``topic``'s partitions."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        ends = [
            TopicPartition(topic, p, consumer.get_watermark_offsets(TopicPartition(topic, p))[1])
            for p in range(partitions)
        ]
        consumer.commit(offsets=ends, asynchronous=False)
    finally:
        consumer.close()


def wait_replicas(kube: Kube, ns: str, name: str, replicas: int, timeout: float = 30) -> None:
    def probe() -> bool:
        deployment = owned(kube, ns, name, "Deployment")
        return deployment is not None and deployment["spec"]["replicas"] == replicas

    eventually(probe, timeout, f"{name} to run {replicas} replicas")


def wait_condition(
    kube: Kube,
    ns: str,
    name: str,
    type_: str,
    status: str,
    reason: str | None = None,
    timeout: float = 30,
) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        body = connector(kube, ns, name)
        found = condition_of(body, type_)
        if (
            found is not None
            and found["status"] == status
            and (reason is None or found["reason"] == reason)
            and found.get("observedGeneration") == body["metadata"]["generation"]
        ):
            return found
        return None

    return eventually(probe, timeout, f"{name}: {type_}={status} ({reason})")


def events(kube: Kube, ns: str, name: str) -> list[tuple[str, str, str]]:
    listed = kube.request(
        "GET",
        resource_path("v1", "events", ns, None),
        query=[("fieldSelector", f"involvedObject.name={name}")],
    )["items"]
    return [(e["type"], e["reason"], e["message"]) for e in listed]


def rendered_config(kube: Kube, ns: str, name: str) -> dict[str, Any]:
    configmap = owned(kube, ns, name, "ConfigMap")
    assert configmap is not None
    loaded: dict[str, Any] = yaml.safe_load(configmap["data"]["connector.yaml"])
    return loaded


def test_six_partitions_become_owned_objects_and_a_truthful_status(
    operator: OperatorThread,
    kube: Kube,
    ns: str,
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
) -> None:
    topic = make_topic(6, prefix="six")
    created = create_connector(kube, connector_body("six", ns, kafka_bootstrap, [topic], SINK))
    uid = created["metadata"]["uid"]

    wait_replicas(kube, ns, "six", 6)
    for kind in OWNED:
        # The same reconcile applies them one after another: the Deployment having its
        # replicas does not mean the Service that follows it is there yet.
        eventually(partial(_exists, kube, ns, "six", kind), 30, kind)
        obj = owned(kube, ns, "six", kind)
        assert obj is not None, kind
        [owner] = obj["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["uid"], owner["controller"]) == ("Connector", uid, True)
    assert load_connector(rendered_config(kube, ns, "six")).spec.sink.uri == SINK

    wait_condition(kube, ns, "six", "SourceReady", "True", "TopicsFound")
    wait_condition(kube, ns, "six", "SinkResolved", "True", "Resolved")
    # No kubelet here: the pods exist but nothing runs them, so the Connector is not Ready.
    not_ready = wait_condition(kube, ns, "six", "Ready", "False", "ReplicasUnavailable")
    assert "0 of 6" in not_ready["message"]
    status = connector(kube, ns, "six")["status"]
    assert status["partitions"] == 6
    assert status["replicas"] == 6
    assert status["lag"] == 0
    assert status["selector"] == selector_string("six")
    assert status["sinkUri"] == SINK
    # No finalizer: deleting a Connector never waits for the operator.
    assert not connector(kube, ns, "six")["metadata"].get("finalizers")

    # Play the kubelet: the pods pass their readiness probes, and Ready follows.
    eventually(lambda: mark_pods_ready(kube, ns, selector_string("six")) == 6, 30, "six pods exist")
    wait_condition(kube, ns, "six", "Ready", "True", "Available")
    wait_condition(kube, ns, "six", "Degraded", "False", "AsExpected")
    assert ("Normal", "Ready", f"Delivering to {SINK}.") in events(kube, ns, "six")

    table = kube.request(
        "GET",
        resource_path("sluice.dev/v1alpha1", "connectors", ns, None),
        accept="application/json;as=Table;v=v1;g=meta.k8s.io",
    )
    columns = [c["name"] for c in table["columnDefinitions"]]
    [row] = [r for r in table["rows"] if r["cells"][0] == "six"]
    cells = dict(zip(columns, row["cells"], strict=True))
    assert cells["Topics"] == f'["{topic}"]'
    assert (cells["Partitions"], cells["Replicas"], cells["Lag"]) == (6, 6, 0)
    assert (cells["Ready"], cells["Reason"]) == ("True", "Available")
    assert cells["Ready Pods"] == 6


def test_replicas_follow_partitions_and_the_scaling_fields(
    operator: OperatorThread,
    kube: Kube,
    ns: str,
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
    admin: AdminClient,
) -> None:
    topic = make_topic(2, prefix="grow")
    create_connector(kube, connector_body("grow", ns, kafka_bootstrap, [topic], SINK))
    wait_replicas(kube, ns, "grow", 2)

    admin.create_partitions([NewPartitions(topic, 6)])[topic].result(30)
    started = time.monotonic()
    wait_replicas(kube, ns, "grow", 6, timeout=30)
    assert time.monotonic() - started < 30
    eventually(
        lambda: connector(kube, ns, "grow")["status"].get("partitions") == 6, 10, "6 partitions"
    )

    patch_spec(kube, ns, "grow", {"scaling": {"maxReplicas": 4}})
    wait_replicas(kube, ns, "grow", 4)
    patch_spec(kube, ns, "grow", {"scaling": {"maxReplicas": None, "consumersPerReplica": 3}})
    wait_replicas(kube, ns, "grow", math.ceil(6 / 3))
    assert rendered_config(kube, ns, "grow")["spec"]["scaling"]["consumersPerReplica"] == 3

    patch_spec(kube, ns, "grow", {"paused": True})
    wait_replicas(kube, ns, "grow", 0)
    wait_condition(kube, ns, "grow", "Ready", "False", "Paused")
    patch_spec(kube, ns, "grow", {"paused": False})
    wait_replicas(kube, ns, "grow", 2)

    rescaled = [
        message for kind, reason, message in events(kube, ns, "grow") if reason == "Rescaled"
    ]
    assert "Scaled from 2 to 6 replicas: 6 partitions, 1 consumer per replica." in rescaled
    assert "Scaled from 2 to 0 replicas: paused." in rescaled


def test_scale_subresource_drives_the_replicas(
    operator: OperatorThread,
    kube: Kube,
    ns: str,
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
) -> None:
    topic = make_topic(4, prefix="scale")
    create_connector(kube, connector_body("scale", ns, kafka_bootstrap, [topic], SINK))
    wait_replicas(kube, ns, "scale", 4)

    # What kubectl scale, an HPA or KEDA do. (An HPA reads the scale subresource first, which
    # works once spec.replicas is set: handing a Connector to an autoscaler means setting it.)
    scale_path = connector_path(ns, "scale") + "/scale"
    kube.request(
        "PATCH",
        scale_path,
        body={"spec": {"replicas": 1}},
        content_type="application/merge-patch+json",
    )
    wait_replicas(kube, ns, "scale", 1)
    scale = eventually(
        lambda: (s := kube.request("GET", scale_path))["status"].get("replicas") == 1 and s,
        30,
        "the scale subresource to report 1 replica",
    )
    assert scale["spec"]["replicas"] == 1
    assert scale["status"]["selector"] == selector_string("scale")
    patch_spec(kube, ns, "scale", {"replicas": None})
    wait_replicas(kube, ns, "scale", 4)


def test_window_change_rolls_the_pods_with_the_new_config(
    operator: OperatorThread,
    kube: Kube,
    ns: str,
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
) -> None:
    topic = make_topic(1, prefix="window")
    create_connector(kube, connector_body("window", ns, kafka_bootstrap, [topic], SINK))
    wait_replicas(kube, ns, "window", 1)

    def config_hash() -> str:
        deployment = owned(kube, ns, "window", "Deployment")
        assert deployment is not None
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        return str(annotations[CONFIG_HASH_ANNOTATION])

    before = config_hash()
    patch_spec(kube, ns, "window", {"window": {"maxMessages": 10, "maxInterval": "2s"}})
    after = eventually(lambda: (h := config_hash()) != before and h, 30, "a new config hash")

    runtime = load_connector(rendered_config(kube, ns, "window"))
    assert runtime.spec.window.max_messages == 10
    assert runtime.spec.window.max_interval == 2.0
    wait_condition(kube, ns, "window", "SourceReady", "True")
    status = connector(kube, ns, "window")["status"]
    assert status["configHash"] == after
    assert status["observedGeneration"] == 2


def test_invalid_pattern_is_reported_by_field_and_fixed_by_the_spec(
    operator: OperatorThread,
    kube: Kube,
    ns: str,
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
) -> None:
    topic = make_topic(1, prefix="invalid")
    create_connector(kube, connector_body("invalid", ns, kafka_bootstrap, [topic], SINK))
    wait_replicas(kube, ns, "invalid", 1)
    deployment = owned(kube, ns, "invalid", "Deployment")
    assert deployment is not None

    bad = {"pattern": {"value": {"amount": [{"numeric": [">"]}]}}}
    patch_spec(kube, ns, "invalid", {"filter": bad})
    ready = wait_condition(kube, ns, "invalid", "Ready", "False", "InvalidSpec")
    assert ready["message"].startswith("spec.filter.pattern.value.amount[0]: numeric needs")
    wait_condition(kube, ns, "invalid", "Degraded", "True", "InvalidSpec")
    # The last good configuration keeps running, untouched, through a few timer rounds.
    time.sleep(3 * operator.config.timer_interval)
    unchanged = owned(kube, ns, "invalid", "Deployment")
    assert unchanged is not None
    assert unchanged["metadata"]["generation"] == deployment["metadata"]["generation"]
    warnings = [e for e in events(kube, ns, "invalid") if e[1] == "InvalidSpec"]
    assert len(warnings) == 1
    assert warnings[0][0] == "Warning"

    good = {"pattern": {"value": {"amount": [{"numeric": [">", 0]}]}}}
    patch_spec(kube, ns, "invalid", {"filter": good})
    wait_condition(kube, ns, "invalid", "Degraded", "False", "AsExpected")
    assert rendered_config(kube, ns, "invalid")["spec"]["filter"] == good


class TcpProxy:
    """Forwards a local port to the broker; closed, the broker looks unreachable."""

    def __init__(self, target: str) -> None:
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._server: socket.socket | None = None
        self._stopped = threading.Event()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen()
        server.settimeout(0.2)
        self._server = server
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        assert self._server is not None
        while not self._stopped.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                end.close()

    def stop(self) -> None:
        self._stopped.set()
        if self._server is not None:
            self._server.close()


def test_unreachable_kafka_is_reported_and_recovers_by_itself(
    operator: OperatorThread,
    kube: Kube,
    ns: str,
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
) -> None:
    topic = make_topic(3, prefix="unreachable")
    proxy = TcpProxy(kafka_bootstrap)
    create_connector(kube, connector_body("unreachable", ns, proxy.address, [topic], SINK))
    source = wait_condition(kube, ns, "unreachable", "SourceReady", "False", "KafkaUnreachable")
    assert f"topic {topic}" in source["message"]
    wait_condition(kube, ns, "unreachable", "Ready", "False", "KafkaUnreachable")
    wait_condition(kube, ns, "unreachable", "Degraded", "True", "KafkaUnreachable")
    # Unknown partitions: the runtime still gets a minimal Deployment of its own to try with.
    wait_replicas(kube, ns, "unreachable", 1)
    assert ("Warning", "KafkaUnreachable") in [e[:2] for e in events(kube, ns, "unreachable")]

    proxy.start()
    try:
        wait_condition(kube, ns, "unreachable", "SourceReady", "True", "TopicsFound")
        wait_replicas(kube, ns, "unreachable", 3)
    finally:
        proxy.stop()


def test_sink_refs_resolve_to_service_and_addressable_urls(
    operator: OperatorThread,
    kube: Kube,
    ns: str,
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
) -> None:
    topic = make_topic(1, prefix="ref")
    body = connector_body("ref", ns, kafka_bootstrap, [topic], SINK)
    body["spec"]["sink"] = {"ref": {"name": "cleaner"}}
    create_connector(kube, body)
    sink = wait_condition(kube, ns, "ref", "SinkResolved", "False", "SinkNotFound")
    assert sink["message"] == f"Service {ns}/cleaner not found."
    wait_condition(kube, ns, "ref", "Ready", "False", "SinkNotFound")
    assert owned(kube, ns, "ref", "Deployment") is None  # nowhere to deliver yet

    kube.request(
        "POST",
        resource_path("v1", "services", ns, None),
        body={
            "metadata": {"name": "cleaner"},
            "spec": {
                "selector": {"app": "cleaner"},
                "ports": [{"name": "http", "port": 8080, "targetPort": 8080}],
            },
        },
    )
    wait_condition(kube, ns, "ref", "SinkResolved", "True", "Resolved", timeout=30)
    expected = f"http://cleaner.{ns}.svc.cluster.local:8080/"
    rendered_sink = rendered_config(kube, ns, "ref")["spec"]["sink"]
    assert rendered_sink["uri"] == expected
    assert "ref" not in rendered_sink
    assert connector(kube, ns, "ref")["status"]["sinkUri"] == expected

    # Anything Addressable (a Knative Service, Broker…) resolves to its status.address.url.
    group = "sinks.sluice-tests.dev"
    kube.request(
        "PATCH",
        resource_path("apiextensions.k8s.io/v1", "customresourcedefinitions", None, f"fns.{group}"),
        body={
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": f"fns.{group}"},
            "spec": {
                "group": group,
                "scope": "Namespaced",
                "names": {"plural": "fns", "singular": "fn", "kind": "Fn"},
                "versions": [
                    {
                        "name": "v1",
                        "served": True,
                        "storage": True,
                        "schema": {
                            "openAPIV3Schema": {
                                "type": "object",
                                "x-kubernetes-preserve-unknown-fields": True,
                            }
                        },
                    }
                ],
            },
        },
        query=[("fieldManager", "sluice-tests"), ("force", "true")],
        content_type="application/apply-patch+yaml",
    )

    def create_fn() -> bool:
        try:
            kube.request(
                "POST",
                resource_path(f"{group}/v1", "fns", ns, None),
                body={
                    "apiVersion": f"{group}/v1",
                    "kind": "Fn",
                    "metadata": {"name": "fn"},
                    "status": {"address": {"url": "http://fn.example.internal"}},
                },
            )
        except KubeError as error:
            if error.status == 404:  # the new CRD is not served yet
                return False
            raise
        return True

    try:
        eventually(create_fn, 30, "the Fn CRD to be served")
        fn_ref = {"apiVersion": f"{group}/v1", "kind": "Fn", "name": "fn"}
        patch_spec(kube, ns, "ref", {"sink": {"ref": fn_ref}})
        eventually(
            lambda: (
                rendered_config(kube, ns, "ref")["spec"]["sink"]["uri"]
                == "http://fn.example.internal"
            ),
            30,
            "the Fn's address in the runtime config",
        )
    finally:
        kube.request(
            "DELETE",
            resource_path(
                "apiextensions.k8s.io/v1", "customresourcedefinitions", None, f"fns.{group}"
            ),
        )


def test_dead_letter_topic_is_created_when_missing(
    operator: OperatorThread,
    kube: Kube,
    ns: str,
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
    admin: AdminClient,
) -> None:
    topic = make_topic(1, prefix="dlq-source")
    dead_letter = f"dlq-{uuid.uuid4().hex[:8]}"
    body = connector_body(
        "dlq",
        ns,
        kafka_bootstrap,
        [topic],
        SINK,
        delivery={"deadLetter": {"kafka": {"topic": dead_letter}}},
    )
    create_connector(kube, body)
    try:
        wait_condition(kube, ns, "dlq", "SourceReady", "True")
        assert dead_letter in admin.list_topics(timeout=10).topics
        assert ("Normal", "CreatedDeadLetterTopic", dead_letter) in events(kube, ns, "dlq")
    finally:
        admin.delete_topics([dead_letter])[dead_letter].exception(30)


def test_deleting_the_connector_garbage_collects_its_objects(
    operator: OperatorThread,
    kube: Kube,
    ns: str,
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
) -> None:
    topic = make_topic(2, prefix="gone")
    create_connector(kube, connector_body("gone", ns, kafka_bootstrap, [topic], SINK))
    wait_replicas(kube, ns, "gone", 2)
    kube.request("DELETE", connector_path(ns, "gone"))
    eventually(
        lambda: all(owned(kube, ns, "gone", kind) is None for kind in OWNED),
        60,
        "the ConfigMap, Deployment and Service to be garbage-collected",
    )


def test_lag_scaling_wakes_on_lag_and_sleeps_when_caught_up(
    operator: OperatorThread,
    kube: Kube,
    ns: str,
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
) -> None:
    topic = make_topic(4, prefix="lag")
    body = connector_body(
        "lag",
        ns,
        kafka_bootstrap,
        [topic],
        SINK,
        scaling={"mode": "lag", "lagThreshold": 10, "minReplicas": 0, "stabilizationWindow": "1s"},
    )
    body["spec"]["source"]["kafka"]["initialOffset"] = "earliest"
    create_connector(kube, body)
    wait_replicas(kube, ns, "lag", 0)
    wait_condition(kube, ns, "lag", "Ready", "True", "ScaledToZero")

    produce(kafka_bootstrap, topic, [(None, f'{{"n": {i}}}') for i in range(25)])
    wait_replicas(kube, ns, "lag", 3)  # ceil(25 / 10)
    # The status is written after the Deployment, in the same reconcile.
    eventually(lambda: connector(kube, ns, "lag")["status"].get("lag") == 25, 10, "lag 25")

    # The consumers caught up: the group committed the end of every partition.
    commit_the_ends(kafka_bootstrap, f"{ns}.lag", topic, 4)
    wait_replicas(kube, ns, "lag", 0)
    eventually(lambda: connector(kube, ns, "lag")["status"].get("lag") == 0, 10, "lag 0")


def test_a_group_reading_from_latest_keeps_a_replica_until_it_has_started(
    operator: OperatorThread,
    kube: Kube,
    ns: str,
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
) -> None:
    """At zero replicas a new group reading from latest would never start: what is
    produced would count as no lag, and be skipped once a member joined."""
    topic = make_topic(2, prefix="lag")
    body = connector_body(
        "fresh",
        ns,
        kafka_bootstrap,
        [topic],
        SINK,
        scaling={"mode": "lag", "minReplicas": 0, "stabilizationWindow": "1s"},
    )
    assert body["spec"]["source"]["kafka"].get("initialOffset", "latest") == "latest"
    create_connector(kube, body)
    produce(kafka_bootstrap, topic, [(None, '{"n": 1}')])
    wait_replicas(kube, ns, "fresh", 1)
    time.sleep(3)  # beyond the window: still one, and not scaled to zero
    deployment = owned(kube, ns, "fresh", "Deployment")
    assert deployment is not None
    assert deployment["spec"]["replicas"] == 1

    # Its member commits where it starts (the runtime does, within seconds of joining).
    commit_the_ends(kafka_bootstrap, f"{ns}.fresh", topic, 2)
    wait_replicas(kube, ns, "fresh", 0)
    wait_condition(kube, ns, "fresh", "Ready", "True", "ScaledToZero")


def test_runtime_fields_the_api_server_rejects_are_an_invalid_spec(
    operator: OperatorThread,
    kube: Kube,
    ns: str,
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
) -> None:
    topic = make_topic(1, prefix="resources")
    body = connector_body(
        "resources",
        ns,
        kafka_bootstrap,
        [topic],
        SINK,
        # Each a valid quantity (the schema checks that), but no container asks for more
        # than its limit: only the Deployment's own validation knows.
        runtime={"resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}},
    )
    create_connector(kube, body)
    ready = wait_condition(kube, ns, "resources", "Ready", "False", "InvalidSpec")
    assert ready["message"].startswith(
        f"spec.runtime: the API server rejected Deployment {ns}/sluice-resources:"
    )
    assert "must be less than or equal to cpu limit" in ready["message"]
    patch_spec(kube, ns, "resources", {"runtime": {"resources": {"requests": {"cpu": "500m"}}}})
    wait_replicas(kube, ns, "resources", 1)
    wait_condition(kube, ns, "resources", "Degraded", "False", "AsExpected")
