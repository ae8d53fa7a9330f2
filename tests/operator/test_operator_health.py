"""The data plane's health reaches the Connector's status: the rendered pods run as local
processes (testkit.local_pods) against the real broker, the operator reads their /status
as it would through cluster DNS, and the status on the real API server tells the truth."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sluice_operator.kube import Kube, resource_path
from testkit.function_server import FunctionServer, ThreadedFunctionServer
from testkit.local_pods import LocalFleet
from testkit.operator_harness import (
    OperatorThread,
    condition_of,
    connector_body,
    create_connector,
    eventually,
)
from tests.support import produce

pytestmark = pytest.mark.integration


@pytest.fixture
def ns(kube: Kube) -> Iterator[str]:
    name = f"health-{uuid.uuid4().hex[:8]}"
    kube.request("POST", "/api/v1/namespaces", body={"metadata": {"name": name}})
    yield name
    kube.request("DELETE", f"/api/v1/namespaces/{name}")


def poison_rejected(events: list[Any]) -> tuple[int, dict[str, str], bytes] | None:
    if any((e.get("data") or {}).get("value", {}).get("poison") for e in events):
        return 400, {}, b'{"error": "cannot process a poisoned order"}'
    return None


def connector_path(ns: str, name: str) -> str:
    return resource_path("sluice.dev/v1alpha1", "connectors", ns, name)


def test_a_poison_record_blocks_delivery_and_the_status_says_where(
    kubeconfig: str,
    kube: Kube,
    ns: str,
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
    tmp_path: Path,
) -> None:
    topic = make_topic(1, prefix="health")
    fleet = LocalFleet(kube, ns, "orders", tmp_path)
    try:
        run_poison_scenario(kubeconfig, kube, ns, kafka_bootstrap, topic, fleet)
    finally:
        fleet.stop()


def run_poison_scenario(
    kubeconfig: str, kube: Kube, ns: str, kafka_bootstrap: str, topic: str, fleet: LocalFleet
) -> None:
    with (
        ThreadedFunctionServer(behaviour=poison_rejected) as function,
        OperatorThread(kubeconfig, [ns], resolver=fleet.resolve) as operator,
    ):
        body = connector_body(
            "orders",
            ns,
            kafka_bootstrap,
            [topic],
            function.url,
            window={"maxMessages": 1},
            delivery={"errorTolerance": "none", "retry": {"maxDelay": "1s"}},
        )
        body["spec"]["source"]["kafka"]["initialOffset"] = "earliest"
        create_connector(kube, body)
        eventually(lambda: kube.get(fleet.deployment_path), 30, "the Deployment")
        eventually(lambda: fleet.follow() == 1, 30, "the runtime pod")

        def ready() -> dict[str, Any] | None:
            fleet.follow()
            connector = kube.get(connector_path(ns, "orders"))
            found = condition_of(connector, "Ready")
            return connector if found and found["status"] == "True" else None

        eventually(ready, 60, "Ready=True")
        produce(kafka_bootstrap, topic, [("a", '{"n": 0}'), ("b", '{"n": 1, "poison": true}')])
        produce(kafka_bootstrap, topic, [("c", '{"n": 2}')])

        def blocked() -> dict[str, Any] | None:
            connector = kube.get(connector_path(ns, "orders"))
            found = condition_of(connector, "Degraded")
            if found is None or found["reason"] != "DeliveryBlocked":
                return None
            return connector

        connector = eventually(blocked, 30, "Degraded/DeliveryBlocked")
        degraded = condition_of(connector, "Degraded")
        assert degraded is not None
        assert degraded["status"] == "True"
        assert f"Partition {topic}-0 is blocked at offset 1" in degraded["message"]
        assert "cannot process a poisoned order" in degraded["message"]
        ready_condition = condition_of(connector, "Ready")
        assert ready_condition is not None
        assert (ready_condition["status"], ready_condition["reason"]) == (
            "False",
            "DeliveryBlocked",
        )
        assert connector["status"]["oldestUndeliveredSeconds"] >= 0
        assert [e["data"]["value"]["n"] for e in function.events()] == [0]  # none past it

        def warned() -> bool:
            events = kube.request(
                "GET",
                resource_path("v1", "events", ns, None),
                query=[("fieldSelector", "involvedObject.name=orders")],
            )["items"]
            return [e["reason"] for e in events].count("DeliveryBlocked") == 1

        eventually(warned, 10, "one DeliveryBlocked Event")

        function.behaviour = None  # the function is fixed
        eventually(ready, 30, "Ready=True again once the function takes the record")
        assert sorted(e["data"]["value"]["n"] for e in function.events()) == [0, 1, 2]
        recovered = kube.get(connector_path(ns, "orders"))
        assert condition_of(recovered, "Degraded")["reason"] == "AsExpected"  # type: ignore[index]

        # Bounded writes: once the figures settle (the rate's minute has passed), an idle
        # Connector is not written to, however often it is re-checked.
        def settled() -> bool:
            status = (kube.get(connector_path(ns, "orders")) or {}).get("status") or {}
            return status.get("deliveredPerSecond") == 0 and status.get("lag") == 0

        eventually(settled, 90, "the rate to fall to zero")
        writes, rechecks = written(operator), operator.reconciles("timer")
        before = kube.get(connector_path(ns, "orders"))["status"]  # type: ignore[index]
        eventually(lambda: operator.reconciles("timer") >= rechecks + 4, 30, "re-checks")
        after = kube.get(connector_path(ns, "orders"))["status"]  # type: ignore[index]
        changed = {k: (before.get(k), after.get(k)) for k in after if before.get(k) != after.get(k)}
        assert written(operator) == writes, changed


def test_a_failing_sink_shows_sink_failing(
    kubeconfig: str,
    kube: Kube,
    ns: str,
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
    tmp_path: Path,
) -> None:
    topic = make_topic(1, prefix="health")
    fleet = LocalFleet(kube, ns, "flaky", tmp_path)
    try:
        run_failing_sink_scenario(kubeconfig, kube, ns, kafka_bootstrap, topic, fleet)
    finally:
        fleet.stop()


def run_failing_sink_scenario(
    kubeconfig: str, kube: Kube, ns: str, kafka_bootstrap: str, topic: str, fleet: LocalFleet
) -> None:
    def down(_events: list[Any]) -> tuple[int, dict[str, str], bytes]:
        return 500, {}, b'{"error": "database unavailable"}'

    function: FunctionServer
    with (
        ThreadedFunctionServer(behaviour=down) as function,
        OperatorThread(kubeconfig, [ns], resolver=fleet.resolve),
    ):
        body = connector_body(
            "flaky",
            ns,
            kafka_bootstrap,
            [topic],
            function.url,
            delivery={"retry": {"initialDelay": "100ms", "maxDelay": "500ms"}},
        )
        body["spec"]["source"]["kafka"]["initialOffset"] = "earliest"
        create_connector(kube, body)
        eventually(lambda: kube.get(fleet.deployment_path), 30, "the Deployment")
        eventually(lambda: fleet.follow() == 1, 30, "the runtime pod")
        produce(kafka_bootstrap, topic, [(f"k{i}", f'{{"n": {i}}}') for i in range(5)])

        def failing() -> dict[str, Any] | None:
            fleet.follow()
            connector = kube.get(connector_path(ns, "flaky"))
            found = condition_of(connector, "Degraded")
            return connector if found and found["reason"] == "SinkFailing" else None

        connector = eventually(failing, 45, "Degraded/SinkFailing")
        message = condition_of(connector, "Degraded")["message"]  # type: ignore[index]
        assert "database unavailable" in message
        assert "none go through" in message
        assert condition_of(connector, "Ready")["reason"] == "SinkFailing"  # type: ignore[index]


def written(operator: OperatorThread) -> dict[tuple[str, str], float]:
    """The operator's writes so far by verb and kind (a failure shows what was written)."""
    return {
        (sample.labels["verb"], sample.labels["kind"]): sample.value
        for metric in operator.context.metrics.writes.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
    }
