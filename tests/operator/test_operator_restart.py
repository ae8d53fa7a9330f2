"""A restarted operator converges on the objects it already made: no duplicates and no
churn. A reconcile of an unchanged Connector writes nothing, not even to the Connector."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sluice_operator.builders import selector_string
from sluice_operator.kube import Kube, resource_path
from testkit.operator_harness import (
    OperatorThread,
    condition_of,
    connector_body,
    create_connector,
    eventually,
    mark_pods_ready,
)

pytestmark = pytest.mark.integration

KINDS = [
    ("sluice.dev/v1alpha1", "connectors"),
    ("v1", "configmaps"),
    ("apps/v1", "deployments"),
    ("v1", "services"),
]


@pytest.fixture
def ns(kube: Kube) -> Iterator[str]:
    name = f"restart-{uuid.uuid4().hex[:8]}"
    kube.request("POST", "/api/v1/namespaces", body={"metadata": {"name": name}})
    yield name
    kube.request("DELETE", f"/api/v1/namespaces/{name}")


def snapshot(kube: Kube, ns: str) -> dict[tuple[str, str], str]:
    """Every object of the kinds the operator touches, by kind and name, with its
    resourceVersion (which changes on any write)."""
    found: dict[tuple[str, str], str] = {}
    for api, plural in KINDS:
        for item in kube.request("GET", resource_path(api, plural, ns, None))["items"]:
            if item["metadata"]["name"] == "kube-root-ca.crt":
                continue
            found[(plural, item["metadata"]["name"])] = item["metadata"]["resourceVersion"]
    return found


def settled(kube: Kube, ns: str, names: list[str]) -> bool:
    for name in names:
        body = kube.get(resource_path("sluice.dev/v1alpha1", "connectors", ns, name))
        ready = condition_of(body, "Ready")
        if body is None or ready is None:
            return False
        if body["status"].get("observedGeneration") != body["metadata"]["generation"]:
            return False
    return True


def test_restarted_operator_converges_without_writing(
    kubeconfig: str, kube: Kube, ns: str, kafka_bootstrap: str, make_topic: Callable[..., str]
) -> None:
    topic = make_topic(3, prefix="restart")
    specs: dict[str, dict[str, Any]] = {
        "running": {},
        "paused": {"paused": True},
        "invalid": {"transform": {"jsonPath": "value"}},
    }
    first = OperatorThread(kubeconfig, [ns]).start()
    try:
        for name, spec in specs.items():
            body = connector_body(name, ns, kafka_bootstrap, [topic], "http://f.example/", **spec)
            create_connector(kube, body)
        eventually(lambda: settled(kube, ns, list(specs)), 30, "all Connectors reconciled")
        eventually(lambda: mark_pods_ready(kube, ns, selector_string("running")) == 3, 30, "3 pods")

        def running_ready() -> dict[str, Any] | None:
            body = kube.get(resource_path("sluice.dev/v1alpha1", "connectors", ns, "running"))
            found = condition_of(body, "Ready")
            return found if found is not None and found["status"] == "True" else None

        ready = eventually(running_ready, 30, "the running Connector to be Ready")
        assert ready["reason"] == "Available"

        # Quiet: two timer rounds without any write.
        def quiet() -> bool:
            before = first.writes()
            timer = first.reconciles("timer")
            eventually(lambda: first.reconciles("timer") >= timer + 2 * len(specs), 30, "timer")
            return first.writes() == before

        eventually(quiet, 60, "the first operator to stop writing")
    finally:
        first.stop()

    before = snapshot(kube, ns)
    assert {name for plural, name in before if plural == "deployments"} == {
        "sluice-running",
        "sluice-paused",
    }

    second = OperatorThread(kubeconfig, [ns]).start()
    try:
        # It resumes every Connector, then its timer passes over each of them again.
        eventually(lambda: second.reconciles("change") >= len(specs), 30, "resume reconciles")
        eventually(lambda: second.reconciles("timer") >= 2 * len(specs), 30, "timer reconciles")
        assert second.writes() == 0
        assert snapshot(kube, ns) == before
    finally:
        second.stop()
