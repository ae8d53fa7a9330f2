"""The operator is a deputy: on the real API server and the real broker, a Connector's
author gains no right they lack. The operator's Kafka identity never reaches a broker a
Connector names, Secrets are used only when they opt in, images come from the allow-list,
and a sink in another namespace is refused or, where allowed, reported without telling
anything about that namespace's objects."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient

from sluice_operator.access import CONNECTOR_ACCESS_LABEL
from sluice_operator.builders import runtime_name
from sluice_operator.kube import Kube, resource_path
from sluice_operator.reconcile import connector_path
from testkit.operator_harness import (
    OperatorThread,
    condition_of,
    connector_body,
    create_connector,
    eventually,
    patch_spec,
)
from tests.fake_broker import RecordingBroker

pytestmark = pytest.mark.integration

SINK = "http://function.example/"
OPERATOR_USER = "sluice-operator-identity"
OPERATOR_PASSWORD = f"operator-password-{uuid.uuid4().hex}"
TENANT_PASSWORD = f"tenant-password-{uuid.uuid4().hex}"
ALLOWED_IMAGES = "registry.example/sluice@sha256:*"


def make_namespace(kube: Kube, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    kube.request("POST", "/api/v1/namespaces", body={"metadata": {"name": name}})
    return name


@pytest.fixture(scope="module")
def namespaces(kube: Kube) -> Iterator[dict[str, str]]:
    """The tenant's namespace (watched), another team's and a shared one (sink.ref may
    name the shared one)."""
    made = {role: make_namespace(kube, role) for role in ("tenant", "other", "shared")}
    yield made
    for name in made.values():
        kube.request("DELETE", f"/api/v1/namespaces/{name}")


@pytest.fixture(scope="module")
def untrusted() -> Iterator[RecordingBroker]:
    """A 'broker' run by the Connector's author, recording what it is sent."""
    with RecordingBroker() as broker:
        yield broker


@pytest.fixture(scope="module")
def trusted() -> Iterator[RecordingBroker]:
    """A broker the operator's configuration trusts with its own identity."""
    with RecordingBroker() as broker:
        yield broker


@pytest.fixture(scope="module")
def operator(
    kubeconfig: str,
    kube: Kube,
    namespaces: dict[str, str],
    trusted: RecordingBroker,
) -> Iterator[OperatorThread]:
    with pytest.MonkeyPatch.context() as patch:
        # Where the operator used to take its Kafka credentials from (the runtime's
        # variables): set, to show they no longer reach a Connector's brokers either.
        patch.setenv("SLUICE_KAFKA_USERNAME", OPERATOR_USER)
        patch.setenv("SLUICE_KAFKA_PASSWORD", OPERATOR_PASSWORD)
        with OperatorThread(
            kubeconfig,
            [namespaces["tenant"]],
            sink_ref_namespaces=frozenset({namespaces["shared"]}),
            allowed_runtime_images=(ALLOWED_IMAGES,),
            kafka_trusted_servers=frozenset({trusted.address}),
            kafka_security_protocol="SASL_PLAINTEXT",
            kafka_sasl_mechanism="PLAIN",
            kafka_credentials=(
                ("sasl.username", OPERATOR_USER),
                ("sasl.password", OPERATOR_PASSWORD),
            ),
        ) as running:
            yield running


def create_secret(
    kube: Kube, namespace: str, name: str, data: dict[str, str], opted_in: bool
) -> None:
    labels = {CONNECTOR_ACCESS_LABEL: "true"} if opted_in else {}
    kube.request(
        "POST",
        resource_path("v1", "secrets", namespace, None),
        body={"metadata": {"name": name, "labels": labels}, "stringData": data},
    )


def opt_in(kube: Kube, namespace: str, name: str) -> None:
    kube.request(
        "PATCH",
        resource_path("v1", "secrets", namespace, name),
        body={"metadata": {"labels": {CONNECTOR_ACCESS_LABEL: "true"}}},
        content_type="application/merge-patch+json",
    )


def create_service(kube: Kube, namespace: str, name: str, ports: bool = True) -> None:
    spec: dict[str, Any] = {"selector": {"app": name}}
    if ports:
        spec["ports"] = [{"name": "http", "port": 8080, "targetPort": 8080}]
    else:  # a headless Service may have none
        spec["clusterIP"] = "None"
    kube.request(
        "POST",
        resource_path("v1", "services", namespace, None),
        body={"metadata": {"name": name}, "spec": spec},
    )


def deployment(kube: Kube, namespace: str, name: str) -> dict[str, Any] | None:
    return kube.get(resource_path("apps/v1", "deployments", namespace, runtime_name(name)))


def condition(
    kube: Kube, namespace: str, name: str, type_: str, status: str, reason: str | None
) -> dict[str, Any]:
    """Waits for a condition computed from the Connector's current generation."""

    def probe() -> dict[str, Any] | None:
        body = kube.get(connector_path(namespace, name))
        found = condition_of(body, type_)
        if (
            body is not None
            and found is not None
            and found["status"] == status
            and reason in (None, found["reason"])
            and found.get("observedGeneration") == body["metadata"]["generation"]
        ):
            return found
        return None

    try:
        return eventually(probe, 30, f"{name}: {type_}={status} ({reason})")
    except AssertionError as error:
        seen = condition_of(kube.get(connector_path(namespace, name)), type_)
        raise AssertionError(f"{error}; {type_} is {seen}") from None


def warning_reasons(kube: Kube, namespace: str, name: str) -> set[str]:
    listed = kube.request(
        "GET",
        resource_path("v1", "events", namespace, None),
        query=[("fieldSelector", f"involvedObject.name={name}")],
    )["items"]
    return {e["reason"] for e in listed if e["type"] == "Warning"}


def sasl_auth(secret: str) -> dict[str, Any]:
    return {
        "secretRef": {"name": secret},
        "securityProtocol": "SASL_PLAINTEXT",
        "saslMechanism": "PLAIN",
    }


def test_the_operator_s_kafka_identity_never_reaches_a_broker_a_connector_names(
    operator: OperatorThread,
    kube: Kube,
    namespaces: dict[str, str],
    untrusted: RecordingBroker,
    trusted: RecordingBroker,
) -> None:
    ns = namespaces["tenant"]
    create_secret(
        kube, ns, "tenant-kafka", {"username": "tenant", "password": TENANT_PASSWORD}, True
    )
    # With the Connector's own credentials, and with none.
    leak = connector_body("leak", ns, untrusted.address, ["t"], SINK)
    leak["spec"]["source"]["kafka"]["auth"] = sasl_auth("tenant-kafka")
    leak["spec"]["delivery"] = {"deadLetter": {"kafka": {"topic": "dlq"}}}
    create_connector(kube, leak)
    create_connector(kube, connector_body("bare", ns, untrusted.address, ["t"], SINK))
    # One trusted address beside one of the author's does not make the cluster trusted.
    mixed = connector_body("mixed", ns, trusted.address, ["t"], SINK)
    mixed["spec"]["source"]["kafka"]["bootstrapServers"].append(untrusted.address)
    mixed["spec"]["source"]["kafka"]["auth"] = sasl_auth("tenant-kafka")
    create_connector(kube, mixed)
    # A trusted broker gets the operator's own identity, whatever the Connector says.
    create_connector(kube, connector_body("platform", ns, trusted.address, ["t"], SINK))

    # The author's listener gets what the Connector's own pods would send, and it gets it
    # from the operator within seconds: so it would have caught the operator's password.
    eventually(
        lambda: TENANT_PASSWORD.encode() in untrusted.received(),
        30,
        "the Connector's own credentials at its broker",
    )
    # librdkafka reports the refused login as a timeout (KafkaUnreachable).
    condition(kube, ns, "leak", "SourceReady", "False", None)
    # The trusted broker gets the operator's identity (the allow-list works, and the
    # recorder sees a password when one is sent).
    eventually(
        lambda: OPERATOR_PASSWORD.encode() in trusted.received(),
        30,
        "the operator's identity at the trusted broker",
    )
    time.sleep(3 * operator.config.timer_interval)  # a few more rounds of every Connector
    received = untrusted.received()
    assert OPERATOR_PASSWORD.encode() not in received
    assert OPERATOR_USER.encode() not in received
    # Nothing the operator read made it deploy less: the pods may reach what it cannot.
    assert deployment(kube, ns, "leak") is not None


def test_connector_credentials_read_the_real_broker_and_create_its_dead_letter_topic(
    operator: OperatorThread,
    kube: Kube,
    namespaces: dict[str, str],
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
) -> None:
    ns = namespaces["tenant"]
    topic = make_topic(3, prefix="own-creds")
    dead_letter = f"dlq-{uuid.uuid4().hex[:8]}"
    credentials = {"username": "tenant", "password": "unused-on-plaintext"}
    create_secret(kube, ns, "plain-kafka", credentials, opted_in=False)
    body = connector_body("own", ns, kafka_bootstrap, [topic], SINK)
    body["spec"]["source"]["kafka"]["auth"] = {
        "secretRef": {"name": "plain-kafka"},
        "securityProtocol": "PLAINTEXT",
    }
    body["spec"]["delivery"] = {"deadLetter": {"kafka": {"topic": dead_letter}}}
    create_connector(kube, body)

    ready = condition(kube, ns, "own", "Ready", "False", "NotPermitted")
    assert ready["message"].startswith("spec.source.kafka.auth.secretRef: ")
    assert deployment(kube, ns, "own") is None
    assert "NotPermitted" in warning_reasons(kube, ns, "own")

    opt_in(kube, ns, "plain-kafka")
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    try:
        source = condition(kube, ns, "own", "SourceReady", "True", "TopicsFound")
        assert f"{topic} (3)" in source["message"]
        assert dead_letter in admin.list_topics(timeout=10).topics
        found = eventually(lambda: deployment(kube, ns, "own"), 30, "the Deployment")
        env = found["spec"]["template"]["spec"]["containers"][0]["env"]
        refs = {e["valueFrom"]["secretKeyRef"]["name"] for e in env if "valueFrom" in e}
        assert refs == {"plain-kafka"}
    finally:
        admin.delete_topics([dead_letter])[dead_letter].exception(30)


def test_secrets_that_do_not_opt_in_are_never_used(
    operator: OperatorThread, kube: Kube, namespaces: dict[str, str]
) -> None:
    ns = namespaces["tenant"]
    create_secret(kube, ns, "fn-token", {"token": "t0ken"}, opted_in=False)
    for name, secret in (("token", "fn-token"), ("ghost", "no-such-secret")):
        body = connector_body(name, ns, "127.0.0.1:1", ["t"], SINK)
        body["spec"]["sink"]["auth"] = {"bearerTokenSecretRef": {"name": secret, "key": "token"}}
        create_connector(kube, body)
    unlabelled = condition(kube, ns, "token", "Ready", "False", "NotPermitted")
    missing = condition(kube, ns, "ghost", "Ready", "False", "NotPermitted")
    assert unlabelled["message"].startswith("spec.sink.auth.bearerTokenSecretRef: ")
    assert CONNECTOR_ACCESS_LABEL in unlabelled["message"]
    # Whoever may not read Secrets learns nothing from the status about which exist.
    assert unlabelled["message"].replace("fn-token", "no-such-secret") == missing["message"]
    assert deployment(kube, ns, "token") is None
    assert deployment(kube, ns, "ghost") is None

    opt_in(kube, ns, "fn-token")
    found = eventually(lambda: deployment(kube, ns, "token"), 30, "the Deployment")
    [env] = found["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env["valueFrom"]["secretKeyRef"] == {"name": "fn-token", "key": "token"}


def test_a_schema_registry_secret_must_opt_in_too(
    operator: OperatorThread, kube: Kube, namespaces: dict[str, str]
) -> None:
    ns = namespaces["tenant"]
    create_secret(kube, ns, "registry-creds", {"username": "u", "password": "p"}, opted_in=False)
    body = connector_body("registry", ns, "127.0.0.1:1", ["t"], SINK)
    body["spec"]["source"]["kafka"].update(
        valueFormat="avro",
        schemaRegistry={
            "url": "https://registry.example/apis/ccompat/v7",
            "auth": {"secretRef": {"name": "registry-creds"}},
        },
    )
    create_connector(kube, body)
    ready = condition(kube, ns, "registry", "Ready", "False", "NotPermitted")
    assert ready["message"].startswith("spec.source.kafka.schemaRegistry.auth.secretRef: ")
    assert deployment(kube, ns, "registry") is None

    opt_in(kube, ns, "registry-creds")
    found = eventually(lambda: deployment(kube, ns, "registry"), 30, "the Deployment")
    env = found["spec"]["template"]["spec"]["containers"][0]["env"]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in env if "valueFrom" in e}
    assert refs["SLUICE_SCHEMA_REGISTRY_PASSWORD"] == {
        "name": "registry-creds",
        "key": "password",
        "optional": True,
    }


def test_runtime_images_come_from_the_allow_list(
    operator: OperatorThread, kube: Kube, namespaces: dict[str, str]
) -> None:
    ns = namespaces["tenant"]
    body = connector_body("image", ns, "127.0.0.1:1", ["t"], SINK)
    body["spec"]["runtime"] = {"image": "attacker.example/miner:1"}
    create_connector(kube, body)
    ready = condition(kube, ns, "image", "Ready", "False", "NotPermitted")
    assert ready["message"].startswith("spec.runtime.image: attacker.example/miner:1 ")
    assert ALLOWED_IMAGES in ready["message"]
    assert deployment(kube, ns, "image") is None

    allowed = "registry.example/sluice@sha256:" + "0" * 64
    patch_spec(kube, ns, "image", {"runtime": {"image": allowed}})

    def image() -> str | None:
        found = deployment(kube, ns, "image")
        return found["spec"]["template"]["spec"]["containers"][0]["image"] if found else None

    eventually(lambda: image() == allowed, 30, "the allowed image in the Deployment")
    # Back to a refused one: refused again, and the running pods keep the allowed image.
    patch_spec(kube, ns, "image", {"runtime": {"image": "registry.example/sluice:latest"}})
    condition(kube, ns, "image", "Ready", "False", "NotPermitted")
    assert image() == allowed


def test_queue_mode_waits_for_the_feature_gate(
    operator: OperatorThread, kube: Kube, namespaces: dict[str, str]
) -> None:
    ns = namespaces["tenant"]
    body = connector_body("queue", ns, "127.0.0.1:1", ["t"], SINK)
    body["spec"]["source"]["kafka"]["consumption"] = "queue"
    body["spec"]["delivery"] = {"ordering": "unordered"}
    create_connector(kube, body)
    ready = condition(kube, ns, "queue", "Ready", "False", "NotPermitted")
    assert ready["message"].startswith("spec.source.kafka.consumption: queue mode")
    assert "SLUICE_QUEUE_MODE=true" in ready["message"]
    assert deployment(kube, ns, "queue") is None


def test_sink_refs_stay_in_their_namespace_and_say_nothing_of_others(
    operator: OperatorThread, kube: Kube, namespaces: dict[str, str]
) -> None:
    ns, other, shared = namespaces["tenant"], namespaces["other"], namespaces["shared"]
    create_service(kube, other, "fn")
    create_service(kube, shared, "fn")
    create_service(kube, shared, "headless", ports=False)

    def sink_ref(name: str, namespace: str, service: str) -> None:
        body = connector_body(name, ns, "127.0.0.1:1", ["t"], SINK)
        body["spec"]["sink"] = {"ref": {"name": service, "namespace": namespace}}
        create_connector(kube, body)

    sink_ref("other-fn", other, "fn")
    sink_ref("other-none", other, "missing")
    sink_ref("shared-fn", shared, "fn")
    sink_ref("shared-none", shared, "missing")
    sink_ref("shared-headless", shared, "headless")

    refused = condition(kube, ns, "other-fn", "SinkResolved", "False", "NotPermitted")
    assert refused["message"].startswith("spec.sink.ref.namespace: ")
    assert shared in refused["message"]
    # Refused before looking: the same answer whether the Service exists or not.
    absent = condition(kube, ns, "other-none", "SinkResolved", "False", "NotPermitted")
    assert absent["message"] == refused["message"]
    assert condition(kube, ns, "other-fn", "Ready", "False", "NotPermitted")
    assert deployment(kube, ns, "other-fn") is None

    resolved = condition(kube, ns, "shared-fn", "SinkResolved", "True", "Resolved")
    assert f"http://fn.{shared}.svc.cluster.local:8080/" in resolved["message"]
    # In an allowed namespace, missing and not addressable read the same.
    none = condition(kube, ns, "shared-none", "SinkResolved", "False", "SinkNotFound")
    headless = condition(kube, ns, "shared-headless", "SinkResolved", "False", "SinkNotFound")
    assert none["message"].replace("missing", "headless") == headless["message"]
    assert "ports" not in headless["message"]
    body = kube.get(connector_path(ns, "shared-headless"))
    assert body is not None
    assert "sinkUri" not in body["status"]


def test_a_sink_ref_to_a_secret_is_refused_without_reading_it(
    operator: OperatorThread, kube: Kube, namespaces: dict[str, str]
) -> None:
    """The operator reads a sink with its own rights: a Secret (or any kind of Kubernetes'
    own other than a Service) named as a sink is refused before it is read, with the same
    answer whether it exists or not."""
    ns = namespaces["tenant"]
    create_secret(kube, ns, "db-password", {"password": "s3cret"}, opted_in=False)
    for name, secret in (("secret-sink", "db-password"), ("ghost-sink", "no-such-secret")):
        body = connector_body(name, ns, "127.0.0.1:1", ["t"], SINK)
        body["spec"]["sink"] = {"ref": {"apiVersion": "v1", "kind": "Secret", "name": secret}}
        create_connector(kube, body)
    there = condition(kube, ns, "secret-sink", "SinkResolved", "False", "SinkKindUnsupported")
    absent = condition(kube, ns, "ghost-sink", "SinkResolved", "False", "SinkKindUnsupported")
    assert there["message"].startswith("spec.sink.ref: Secret in v1 is not a sink")
    assert there["message"] == absent["message"]
    assert deployment(kube, ns, "secret-sink") is None
