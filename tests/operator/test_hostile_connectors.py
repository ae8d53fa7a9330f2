"""Connectors written by an attacker or an unlucky tenant, on the real API server: the CRD
refuses what its schema can bound, and the operator survives everything the API server
accepts, keeps reconciling everyone else, and never runs a tenant's UDF code."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sluice_operator.builders import runtime_name
from sluice_operator.kube import Kube, KubeError, resource_path
from sluice_operator.validation import InvalidSpec, validate_connector
from testkit.operator_harness import (
    OperatorThread,
    connector_body,
    create_connector,
    eventually,
)

pytestmark = pytest.mark.integration

SINK = "http://function.example/"


@pytest.fixture(scope="module")
def ns(kube: Kube) -> Iterator[str]:
    name = f"hostile-{uuid.uuid4().hex[:8]}"
    kube.request("POST", "/api/v1/namespaces", body={"metadata": {"name": name}})
    yield name
    kube.request("DELETE", f"/api/v1/namespaces/{name}")


def manifest(name: str, ns: str, **spec: Any) -> dict[str, Any]:
    body = connector_body(name, ns, "kafka:9092", ["t"], SINK)
    body["spec"].update(spec)
    return body


def create_nested(kube: Kube, body: dict[str, Any], depth: int) -> None:
    """Create ``body`` with a pattern nested ``depth`` levels, without this process encoding
    or decoding that depth (its recursion limit is the operator's, which runs in it)."""
    pattern = '{"a": ' * depth + '{"leaf": ["x"]}' + "}" * depth
    raw = json.dumps({**body, "spec": {**body["spec"], "filter": {"pattern": "P"}}})
    prepared = kube.api.param_serialize(
        method="POST",
        resource_path=resource_path(
            "sluice.dev/v1alpha1", "connectors", body["metadata"]["namespace"], None
        ),
        header_params={"Content-Type": "application/yaml", "Accept": "application/json"},
        body=raw.replace('"P"', pattern),  # JSON is YAML; a str body is sent as it is
        auth_settings=["BearerToken"],
    )
    response = kube.api.call_api(*prepared)
    answer = response.read()  # type: ignore[no-untyped-call]
    if not 200 <= response.status < 300:
        raise KubeError(response.status, "", answer.decode(errors="replace")[:2000])


def warnings_about(kube: Kube, ns: str, name: str) -> list[str]:
    listed = kube.request(
        "GET",
        resource_path("v1", "events", ns, None),
        query=[("fieldSelector", f"involvedObject.name={name}")],
    )["items"]
    return [event["message"] for event in listed if event["type"] == "Warning"]


def assert_refused_by_the_crd_and_the_models(kube: Kube, body: dict[str, Any], field: str) -> None:
    """The API server refuses ``body`` naming ``field``, and so does ``sluice validate``."""
    with pytest.raises(KubeError) as rejected:
        create_connector(kube, body)
    assert rejected.value.status == 422
    assert field in rejected.value.message
    with pytest.raises(InvalidSpec) as refused:
        validate_connector(body, lambda _namespace, _name: None)
    assert field in str(refused.value)


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"window": {"maxInterval": "6m"}}, "spec.window.maxInterval"),
        ({"window": {"maxInterval": "9" * 40 + "h"}}, "spec.window.maxInterval"),
        ({"window": {"maxBytes": "65Mi"}}, "spec.window.maxBytes"),
        ({"window": {"maxBytes": 2**26 + 1}}, "spec.window.maxBytes"),
        ({"sink": {"uri": SINK, "timeout": "0s"}}, "spec.sink.timeout"),
        ({"delivery": {"retry": {"maxAttempts": 10001}}}, "spec.delivery.retry.maxAttempts"),
        (
            {"delivery": {"rateLimit": {"requestsPerSecond": 2e6}}},
            "spec.delivery.rateLimit.requestsPerSecond",
        ),
        ({"scaling": {"lagThreshold": 10**13}}, "spec.scaling.lagThreshold"),
        ({"runtime": {"buffer": {"maxBytes": "17Gi"}}}, "spec.runtime.buffer.maxBytes"),
    ],
)
def test_the_crd_refuses_numbers_out_of_range_as_the_models_do(
    kube: Kube, ns: str, spec: dict[str, Any], field: str
) -> None:
    body = manifest(f"range-{uuid.uuid4().hex[:6]}", ns, **spec)
    assert_refused_by_the_crd_and_the_models(kube, body, field)


TRAVERSAL = "../../victim/secrets/kafka-creds"


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        (
            {
                "source": {
                    "kafka": {
                        "bootstrapServers": ["kafka:9092"],
                        "topics": ["t"],
                        "auth": {"secretRef": {"name": TRAVERSAL}, "securityProtocol": "SASL_SSL"},
                    }
                }
            },
            "spec.source.kafka.auth.secretRef.name",
        ),
        (
            {
                "sink": {
                    "uri": SINK,
                    "auth": {"bearerTokenSecretRef": {"name": TRAVERSAL, "key": "k"}},
                }
            },
            "spec.sink.auth.bearerTokenSecretRef.name",
        ),
        ({"sink": {"ref": {"name": "../../victim/services/internal"}}}, "spec.sink.ref.name"),
        ({"sink": {"ref": {"name": "fn", "namespace": "a/b"}}}, "spec.sink.ref.namespace"),
        (
            {"transform": {"udf": {"configMapRef": {"name": "x/../../y", "key": "k"}}}},
            "spec.transform.udf.configMapRef.name",
        ),
    ],
)
def test_names_that_could_reach_another_namespace_are_refused(
    kube: Kube, ns: str, spec: dict[str, Any], field: str
) -> None:
    """The operator reads referenced objects with its own rights, by path: a name with
    "../" in it would read another namespace's Secret. Names must be Kubernetes names."""
    body = manifest(f"name-{uuid.uuid4().hex[:6]}", ns, **spec)
    assert_refused_by_the_crd_and_the_models(kube, body, field)
    with pytest.raises(ValueError, match="is not a Kubernetes object name"):
        resource_path("v1", "secrets", ns, "..")


def test_numbers_within_range_are_accepted(kube: Kube, ns: str) -> None:
    create_connector(
        kube,
        manifest(
            "in-range",
            ns,
            window={"maxInterval": "5m", "maxBytes": "64Mi"},
            sink={"uri": SINK, "timeout": "15m"},
            runtime={"buffer": {"maxBytes": 17179869184, "maxBytesPerPartition": "1Gi"}},
        ),
    )


# 1,200 levels stopped the operator; 9,990 is about the most the API server accepts.
@pytest.mark.parametrize("depth", [1200, 9990])
def test_the_operator_survives_a_deeply_nested_connector_and_serves_the_others(
    kubeconfig: str,
    kube: Kube,
    ns: str,
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
    depth: int,
) -> None:
    deep = connector_body(f"deep-{depth}", ns, kafka_bootstrap, [make_topic(1)], SINK)
    try:
        create_nested(kube, deep, depth)
    except KubeError as error:  # the CRD refuses it at admission: nothing to survive
        pytest.skip(f"the API server refuses the object: {error.message[:200]}")
    with OperatorThread(kubeconfig, [ns]):
        # Everyone else is reconciled...
        topic = make_topic(2)
        neighbour = f"neighbour-{depth}"
        create_connector(kube, connector_body(neighbour, ns, kafka_bootstrap, [topic], SINK))
        eventually(
            lambda: kube.get(resource_path("apps/v1", "deployments", ns, runtime_name(neighbour))),
            60,
            "the neighbour's Deployment",
        )
        # ...and the deep one is told what is wrong with it (read from its Event: this
        # process may not decode the Connector itself).
        [warning] = eventually(
            lambda: warnings_about(kube, ns, f"deep-{depth}") or None,
            60,
            "a Warning about the deep Connector",
        )
        assert warning.startswith("spec.filter.pattern: is nested too deeply: more than 32")


UDF_WRITING_AT_IMPORT = """\
import os
with open({marker!r}, "w") as leak:
    leak.write(repr(dict(os.environ)))

def handle_message(event, context):
    return event
"""


def test_the_operator_never_runs_udf_code(
    kubeconfig: str,
    kube: Kube,
    ns: str,
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
    tmp_path: Path,
) -> None:
    marker = tmp_path / "leaked-environment"
    source = UDF_WRITING_AT_IMPORT.format(marker=str(marker))
    kube.request(
        "POST",
        resource_path("v1", "configmaps", ns, None),
        body={"metadata": {"name": "udf-code", "namespace": ns}, "data": {"main.py": source}},
    )
    topic = make_topic(1)
    by_configmap = {"udf": {"configMapRef": {"name": "udf-code", "key": "main.py"}}}
    with OperatorThread(kubeconfig, [ns]):
        for name, transform in (
            ("udf-cm", by_configmap),
            ("udf-inline", {"udf": {"source": source}}),
        ):
            create_connector(
                kube, connector_body(name, ns, kafka_bootstrap, [topic], SINK, transform=transform)
            )
            deployment = resource_path("apps/v1", "deployments", ns, runtime_name(name))
            eventually(lambda: kube.get(deployment), 60, f"{name}'s Deployment")  # noqa: B023
    assert not marker.exists()


def test_an_empty_sink_namespace_still_means_the_connector_s_own(kube: Kube, ns: str) -> None:
    """Manifests templated with an empty namespace kept working when names got their
    patterns: the API server and the models take it, and it resolves in the Connector's
    own namespace."""
    body = manifest(f"empty-ns-{uuid.uuid4().hex[:6]}", ns)
    body["spec"]["sink"] = {"ref": {"name": "fn", "namespace": ""}}
    create_connector(kube, body)
    connector = validate_connector(body, lambda _namespace, _name: None).connector
    assert connector.spec.sink.ref is not None
    assert (connector.spec.sink.ref.namespace or connector.metadata.namespace) == ns
