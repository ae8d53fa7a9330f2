"""Drain-time scaling on the real API server and broker, with the rendered pods running as
local processes (testkit.local_pods) that report their throughput: a backlog with a fast
sink scales out and, once drained, back in; a sink answering 429 gets no more pods."""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sluice_operator.kube import Kube, resource_path
from testkit.function_server import ThreadedFunctionServer
from testkit.local_pods import LocalFleet
from testkit.operator_harness import OperatorThread, connector_body, create_connector, eventually
from tests.support import produce

pytestmark = pytest.mark.integration

BACKLOG = 20_000
# lagThreshold so high that only a measured throughput can make the Connector grow.
SCALING = {
    "mode": "lag",
    "targetDrainTime": "10s",
    "stabilizationWindow": "10s",
    "lagThreshold": 10**9,
    "maxReplicas": 4,
}


@pytest.fixture
def ns(kube: Kube) -> Iterator[str]:
    name = f"drain-{uuid.uuid4().hex[:8]}"
    kube.request("POST", "/api/v1/namespaces", body={"metadata": {"name": name}})
    yield name
    kube.request("DELETE", f"/api/v1/namespaces/{name}")


def replicas_of(kube: Kube, fleet: LocalFleet) -> int:
    deployment = kube.get(fleet.deployment_path)
    return int(deployment["spec"]["replicas"]) if deployment else 0


def start(
    kube: Kube, ns: str, kafka_bootstrap: str, topic: str, url: str, fleet: LocalFleet
) -> None:
    body = connector_body(
        "drain",
        ns,
        kafka_bootstrap,
        [topic],
        url,
        scaling=SCALING,
        window={"maxMessages": 10},
        delivery={"retry": {"initialDelay": "200ms", "maxDelay": "1s"}},
    )
    body["spec"]["source"]["kafka"]["initialOffset"] = "earliest"
    create_connector(kube, body)
    eventually(lambda: kube.get(fleet.deployment_path), 30, "the Deployment")
    assert replicas_of(kube, fleet) == 1  # nothing measured yet: the threshold says one
    fleet.follow()


def test_a_backlog_with_a_fast_sink_scales_out_then_back_in(
    kubeconfig: str,
    kube: Kube,
    ns: str,
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
    tmp_path: Path,
) -> None:
    topic = make_topic(4, prefix="drain")
    produce(kafka_bootstrap, topic, ((f"k{i}", f'{{"n": {i}}}') for i in range(BACKLOG)))
    fleet = LocalFleet(kube, ns, "drain", tmp_path)
    try:
        # Each request takes 50 ms: one partition delivers at most ~200 records/s, so the
        # backlog takes a minute on one replica and the target is ten seconds.
        with (
            ThreadedFunctionServer(delay=0.05, keep=False) as function,
            OperatorThread(kubeconfig, [ns], resolver=fleet.resolve),
        ):
            start(kube, ns, kafka_bootstrap, topic, function.url, fleet)
            seen: list[int] = []

            def grown() -> bool:
                fleet.follow()
                seen.append(replicas_of(kube, fleet))
                return seen[-1] > 1

            eventually(grown, 60, "a scale-out on the measured throughput")
            eventually(lambda: function.event_count >= BACKLOG, 120, "the backlog delivered")
            peak = max(seen)

            def shrunk() -> bool:
                fleet.follow()
                seen.append(replicas_of(kube, fleet))
                return seen[-1] == 1

            eventually(shrunk, 180, "the scale-in once drained and cooled down")
            peak = max(seen)
            steps = [b for a, b in itertools.pairwise(seen) if a != b]
            print(f"replicas over time (changes): {steps}, peak {peak}")
            assert peak >= 2
            # Growth at most doubles, shrinking at most halves: no jump from 1 to 4.
            assert all(b <= 2 * a or a == 0 for a, b in itertools.pairwise(seen))
    finally:
        fleet.stop()


THROTTLED: list[int] = []


def throttling(events: list[Any]) -> tuple[int, dict[str, str], bytes] | None:
    """Takes one request in three and asks for less traffic on the others: records flow
    (a throughput is measured, the backlog would call for more pods) but the sink is at
    its limit."""
    THROTTLED.append(len(events))
    if len(THROTTLED) % 3 == 0:
        return None
    return 429, {"retry-after": "0.2"}, b'{"error": "slow down"}'


def test_a_sink_answering_429_gets_no_more_pods(
    kubeconfig: str,
    kube: Kube,
    ns: str,
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
    tmp_path: Path,
) -> None:
    topic = make_topic(4, prefix="drain")
    produce(kafka_bootstrap, topic, ((f"k{i}", f'{{"n": {i}}}') for i in range(BACKLOG)))
    fleet = LocalFleet(kube, ns, "drain", tmp_path)
    try:
        with (
            ThreadedFunctionServer(behaviour=throttling) as function,
            OperatorThread(kubeconfig, [ns], resolver=fleet.resolve) as operator,
        ):
            start(kube, ns, kafka_bootstrap, topic, function.url, fleet)
            eventually(lambda: len(THROTTLED) > 10, 30, "requests answered with 429")
            checks = operator.reconciles()
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                fleet.follow()
                assert replicas_of(kube, fleet) == 1
                time.sleep(0.5)
            assert operator.reconciles() >= checks + 5  # it did look, and kept one
            status = kube.get(resource_path("sluice.dev/v1alpha1", "connectors", ns, "drain"))
            assert status is not None
            assert status["status"]["lag"] > 0
    finally:
        fleet.stop()
