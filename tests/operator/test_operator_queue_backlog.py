"""The operator scales a queue-mode Connector in ``lag`` mode on its share group's backlog,
beyond the partition count and within minReplicas/maxReplicas: the real API server and the
real broker, the backlog finished by a share consumer of the test (no runtime pods run)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from confluent_kafka import AcknowledgeType, ShareConsumer

from sluice_operator.kube import Kube
from testkit.operator_harness import OperatorThread, connector_body, create_connector, eventually
from tests.operator.test_operator import connector, wait_condition, wait_replicas
from tests.runtime.test_queue_mode import set_group_config
from tests.support import produce

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ns(kube: Kube) -> Iterator[str]:
    name = f"queue-{uuid.uuid4().hex[:8]}"
    kube.request("POST", "/api/v1/namespaces", body={"metadata": {"name": name}})
    yield name
    kube.request("DELETE", f"/api/v1/namespaces/{name}")


@pytest.fixture(scope="module")
def operator(kubeconfig: str, ns: str, kube: Kube) -> Iterator[OperatorThread]:
    with OperatorThread(kubeconfig, [ns], queue_mode=True) as running:
        yield running


def accept(bootstrap: str, group: str, topic: str, count: int) -> None:
    """A share-group member of the test finishes ``count`` records (accepts them) and
    releases whatever else it acquired."""
    settings = {"bootstrap.servers": bootstrap, "group.id": group}
    consumer = ShareConsumer({**settings, "share.acknowledgement.mode": "explicit"})
    consumer.subscribe([topic])
    accepted = 0
    deadline = time.monotonic() + 30
    try:
        while accepted < count and time.monotonic() < deadline:
            for message in consumer.poll(1):
                if message.error() is not None:
                    continue
                done = accepted < count
                accepted += done
                kind = AcknowledgeType.ACCEPT if done else AcknowledgeType.RELEASE
                consumer.acknowledge(message, kind)
            consumer.commit_sync()
    finally:
        consumer.close()
    assert accepted == count


def test_queue_mode_scales_on_the_share_groups_backlog(
    operator: OperatorThread,
    kube: Kube,
    ns: str,
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
) -> None:
    topic = make_topic(1, prefix="queue-lag")
    body = connector_body(
        "work",
        ns,
        kafka_bootstrap,
        [topic],
        "http://function.example/",
        delivery={"ordering": "unordered"},
        scaling={
            "mode": "lag",
            "lagThreshold": 10,
            "minReplicas": 0,
            "maxReplicas": 6,
            "stabilizationWindow": "1s",
        },
    )
    kafka = body["spec"]["source"]["kafka"]
    kafka.update(consumption="queue", initialOffset="earliest")
    create_connector(kube, body)
    wait_replicas(kube, ns, "work", 0)  # nothing to do
    wait_condition(kube, ns, "work", "Ready", "True", "ScaledToZero")

    produce(kafka_bootstrap, topic, [(None, f'{{"n": {i}}}') for i in range(45)])
    wait_replicas(kube, ns, "work", 5)  # ceil(45 / 10), one partition notwithstanding
    eventually(lambda: connector(kube, ns, "work")["status"].get("lag") == 45, 10, "lag 45")

    produce(kafka_bootstrap, topic, [(None, f'{{"n": {i}}}') for i in range(45, 100)])
    wait_replicas(kube, ns, "work", 6)  # a backlog of 100 wants 10: maxReplicas caps it

    # The pods would set the group to start at the beginning; none run here.
    group = f"{ns}.work.queue"
    set_group_config(kafka_bootstrap, group, **{"share.auto.offset.reset": "earliest"})
    accept(kafka_bootstrap, group, topic, 75)
    wait_replicas(kube, ns, "work", 3)  # 25 left
    eventually(lambda: connector(kube, ns, "work")["status"].get("lag") == 25, 10, "lag 25")

    accept(kafka_bootstrap, group, topic, 25)
    wait_replicas(kube, ns, "work", 0)
    wait_condition(kube, ns, "work", "Ready", "True", "ScaledToZero")
