"""The CRD's schema and CEL rules reject bad Connectors at apply time, on the real API
server, with messages a person can act on; and the runtime's models reject the same."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from sluice_operator.kube import Kube, KubeError, resource_path
from sluice_operator.reconcile import connector_path
from sluice_operator.validation import InvalidSpec, validate_connector
from sluice_runtime.config import load_connector

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ns(kube: Kube) -> Iterator[str]:
    name = f"cel-{uuid.uuid4().hex[:8]}"
    kube.request("POST", "/api/v1/namespaces", body={"metadata": {"name": name}})
    yield name
    kube.request("DELETE", f"/api/v1/namespaces/{name}")


def manifest(name: str, ns: str, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "source": {"kafka": {"bootstrapServers": ["kafka:9092"], "topics": ["t"]}},
        "sink": {"uri": "http://f/"},
    }
    body.update(spec)
    return {
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "Connector",
        "metadata": {"name": name, "namespace": ns},
        "spec": body,
    }


def create(kube: Kube, body: dict[str, Any]) -> dict[str, Any]:
    created: dict[str, Any] = kube.request(
        "POST",
        resource_path("sluice.dev/v1alpha1", "connectors", body["metadata"]["namespace"], None),
        body=body,
    )
    return created


QUEUE_SOURCE = {"bootstrapServers": ["k:9092"], "topics": ["t"], "consumption": "queue"}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"sink": {"uri": "http://f/", "ref": {"name": "f"}}},
            "spec.sink: Invalid value: set exactly one of uri or ref",
        ),
        ({"sink": {}}, "set exactly one of uri or ref"),
        (
            {"sink": {"uri": "http://f/", "format": "cloudevents-binary"}},
            "spec.window.maxMessages: Invalid value: sink.format cloudevents-binary"
            " sends one event per request: it needs window.maxMessages: 1",
        ),
        (
            {"scaling": {"minReplicas": 5, "maxReplicas": 2}},
            "spec.scaling.minReplicas: Invalid value: minReplicas must not exceed maxReplicas",
        ),
        (
            {"scaling": {"processesPerReplica": 8, "consumersPerReplica": 13}},
            "spec.scaling.processesPerReplica: Invalid value: consumersPerReplica times"
            " processesPerReplica must not exceed 100 Kafka consumers per pod",
        ),
        ({"sink": {"uri": "ftp://f/"}}, "uri must start with http:// or https://"),
        (
            {"filter": {"pattern": {"a": [1]}, "patterns": [{"b": [2]}]}},
            "set exactly one of pattern or patterns",
        ),
        (
            {"transform": {"jsonPath": "$.value", "template": {"template": "x"}}},
            "set exactly one of jsonPath, template or udf",
        ),
        ({"window": {"maxMessages": 0}}, "spec.window.maxMessages: Invalid value: 0"),
        ({"window": {"maxInterval": "10 seconds"}}, "spec.window.maxInterval"),
        ({"delivery": {"ordering": "random"}}, 'Unsupported value: "random"'),
        (
            {"runtime": {"resources": {"requests": {"cpu": "a lot"}}}},
            "spec.runtime.resources.requests.cpu: Invalid value",
        ),
        (
            {"source": {"kafka": {"bootstrapServers": ["k:9092"], "topics": ["a", "a"]}}},
            'spec.source.kafka.topics[1]: Duplicate value: "a"',
        ),
        (
            {"source": {"kafka": QUEUE_SOURCE}},
            "spec.delivery.ordering: Invalid value: source.kafka.consumption queue spreads a"
            " partition over every replica: it needs delivery.ordering: unordered",
        ),
        (
            {
                "source": {"kafka": QUEUE_SOURCE},
                "delivery": {"ordering": "unordered", "errorTolerance": "none"},
            },
            "spec.delivery.errorTolerance: Invalid value: source.kafka.consumption queue cannot"
            " hold a failing record",
        ),
    ],
)
def test_bad_manifests_are_rejected_with_readable_messages(
    kube: Kube, ns: str, spec: dict[str, Any], message: str
) -> None:
    body = manifest(f"bad-{uuid.uuid4().hex[:6]}", ns, **spec)
    with pytest.raises(KubeError) as rejected:
        create(kube, body)
    assert rejected.value.status == 422
    assert message in rejected.value.message
    # The operator's own checks (the runtime's models first) agree: the CRD restates them.
    with pytest.raises(InvalidSpec):
        validate_connector(body, lambda _namespace, _name: None)


def test_names_that_cannot_name_the_runtime_objects_are_rejected(kube: Kube, ns: str) -> None:
    with pytest.raises(KubeError) as rejected:
        create(kube, manifest("x" * 57, ns))
    assert rejected.value.status == 422
    assert "metadata.name" in rejected.value.message


def test_consumer_group_is_immutable(kube: Kube, ns: str) -> None:
    kafka = {"bootstrapServers": ["kafka:9092"], "topics": ["t"], "consumerGroup": "ads.views"}
    create(kube, manifest("group", ns, source={"kafka": kafka}))
    create(kube, manifest("defaulted", ns))

    def change(name: str, group: str | None) -> KubeError:
        with pytest.raises(KubeError) as rejected:
            kube.request(
                "PATCH",
                connector_path(ns, name),
                body={"spec": {"source": {"kafka": {"consumerGroup": group}}}},
                content_type="application/merge-patch+json",
            )
        return rejected.value

    for name, group in (("group", "ads.other"), ("group", None), ("defaulted", "ads.views")):
        error = change(name, group)
        assert error.status == 422
        assert "spec.source.kafka.consumerGroup: Forbidden: consumerGroup is immutable" in (
            error.message
        )
    # Other fields still change.
    kube.request(
        "PATCH",
        connector_path(ns, "group"),
        body={"spec": {"window": {"maxMessages": 5}}},
        content_type="application/merge-patch+json",
    )


def test_consumption_and_share_group_are_immutable(kube: Kube, ns: str) -> None:
    queue = {**QUEUE_SOURCE, "shareGroup": "ads.queue"}
    create(kube, manifest("queue", ns, source={"kafka": queue}, delivery={"ordering": "unordered"}))
    for change, message in (
        ({"consumption": "group"}, "consumption is immutable"),
        ({"shareGroup": "ads.other"}, "shareGroup is immutable"),
    ):
        with pytest.raises(KubeError) as rejected:
            kube.request(
                "PATCH",
                connector_path(ns, "queue"),
                body={"spec": {"source": {"kafka": change}}},
                content_type="application/merge-patch+json",
            )
        assert rejected.value.status == 422
        assert message in rejected.value.message
    create(kube, manifest("grouped", ns))
    with pytest.raises(KubeError) as rejected:  # nor does a group Connector become a queue
        kube.request(
            "PATCH",
            connector_path(ns, "grouped"),
            body={
                "spec": {
                    "source": {"kafka": {"consumption": "queue"}},
                    "delivery": {"ordering": "unordered"},
                }
            },
            content_type="application/merge-patch+json",
        )
    assert "consumption is immutable" in rejected.value.message


def test_defaults_are_filled_in_as_written_in_manifests(kube: Kube, ns: str) -> None:
    created = create(kube, manifest("defaults", ns))
    spec = created["spec"]
    assert spec["window"] == {"maxMessages": 100, "maxInterval": "0s", "maxBytes": "6Mi"}
    assert spec["delivery"]["retry"]["maxRetryDuration"] == "24h"
    assert spec["scaling"]["mode"] == "partitions"
    assert "replicas" not in spec
    assert load_connector(created).spec == load_connector(manifest("defaults", ns)).spec
