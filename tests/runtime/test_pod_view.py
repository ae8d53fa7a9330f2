"""One pod's view of several runtime processes: merged metrics and health, each process's
share of the rate limit, and the spec's bounds on processes (processesPerReplica)."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from sluice_runtime.config import Connector, load_connector
from sluice_runtime.errors import ManifestError
from sluice_runtime.health import BlockedPartition, RuntimeHealth, SinkAnswers
from sluice_runtime.metrics import Metrics
from sluice_runtime.pod_view import merge_health, merge_metrics
from sluice_runtime.processes import for_one_process


def samples(exposition: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(exposition.decode())
        for sample in family.samples
    }


def test_counters_and_histograms_add_up_and_gauges_follow_their_meaning() -> None:
    first, second = Metrics(), Metrics()
    first.consumed_from("orders").inc(30)
    second.consumed_from("orders").inc(12)
    second.consumed_from("refunds").inc(5)
    first.delivered.inc(28)
    second.delivered.inc(10)
    for size in (10, 20):
        first.batch_size.observe(size)
    second.batch_size.observe(100)
    first.buffered.set(7)  # quantities: the pod holds both
    second.buffered.set(3)
    first.reading_throttled.set(0)  # a state: throttled while any process is
    second.reading_throttled.set(1)
    first.lag.labels(topic="orders", partition="0").set(40)  # per partition: one owner
    second.lag.labels(topic="orders", partition="1").set(9)
    first.committed.labels(topic="orders", partition="1").set(100)  # a former owner's
    second.committed.labels(topic="orders", partition="1").set(250)

    merged = samples(merge_metrics([first.render().decode(), second.render().decode()]))

    assert merged["sluice_consumed_total", (("topic", "orders"),)] == 42
    assert merged["sluice_consumed_total", (("topic", "refunds"),)] == 5
    assert merged["sluice_delivered_total", ()] == 38
    assert merged["sluice_batch_size_count", ()] == 3
    assert merged["sluice_batch_size_sum", ()] == 130
    assert merged["sluice_batch_size_bucket", (("le", "20.0"),)] == 2
    assert merged["sluice_batch_size_bucket", (("le", "+Inf"),)] == 3
    assert merged["sluice_buffered_records", ()] == 10
    assert merged["sluice_reading_throttled", ()] == 1
    assert merged["sluice_lag", (("partition", "0"), ("topic", "orders"))] == 40
    assert merged["sluice_lag", (("partition", "1"), ("topic", "orders"))] == 9
    assert merged["sluice_committed_offset", (("partition", "1"), ("topic", "orders"))] == 250
    created = [
        first.registry.get_sample_value("sluice_delivered_created"),
        second.registry.get_sample_value("sluice_delivered_created"),
    ]
    assert merged["sluice_delivered_created", ()] == min(c for c in created if c is not None)


def test_the_merge_of_one_process_is_that_process() -> None:
    metrics = Metrics()
    metrics.delivered.inc(3)
    metrics.lag.labels(topic="t", partition="2").set(5)
    assert samples(merge_metrics([metrics.render().decode()])) == samples(metrics.render())


def test_a_process_forgets_the_series_of_a_partition_it_lost() -> None:
    metrics = Metrics()
    metrics.lag.labels(topic="t", partition="2").set(5)
    metrics.committed.labels(topic="t", partition="2").set(8)
    metrics.forget_partition("t", 2)
    metrics.forget_partition("t", 3)  # never had it: nothing to forget
    names = {name for name, _labels in samples(metrics.render())}
    assert "sluice_lag" not in names
    assert "sluice_committed_offset" not in names


def test_health_adds_up_partitions_rates_and_lists_every_blocked_partition() -> None:
    blocked = BlockedPartition(
        topic="t", partition=3, offset=9, since="2026-01-01T00:00:00Z", stage="deliver", error="x"
    )
    first = RuntimeHealth(
        partitions=2,
        sink=SinkAnswers(requests=10, failed=2, last_error="HTTP 500"),
        delivered_per_second=100.5,
        oldest_undelivered_seconds=3.0,
        rebalances=1,
    )
    second = RuntimeHealth(
        partitions=2,
        blocked=[blocked],
        sink=SinkAnswers(requests=5, throttled=1),
        dead_letter_unavailable_since="2026-01-01T00:00:05Z",
        dead_letter_error="broker down",
        delivered_per_second=50.25,
        dead_lettered=4,
        rebalances=1,
    )
    pod = merge_health([first, second])
    assert pod.partitions == 4
    assert pod.blocked == [blocked]
    assert pod.sink == SinkAnswers(
        requests=15, failed=2, throttled=1, rejected=0, last_error="HTTP 500"
    )
    assert pod.dead_letter_unavailable_since == "2026-01-01T00:00:05Z"
    assert pod.dead_letter_error == "broker down"
    assert pod.delivered_per_second == pytest.approx(150.75)
    assert pod.dead_lettered == 4
    assert pod.oldest_undelivered_seconds == 3.0
    assert pod.rebalances == 1  # one rebalance of the group reaches both processes
    assert merge_health([]) == RuntimeHealth()


def manifest(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "Connector",
        "metadata": {"name": "c", "namespace": "n"},
        "spec": {
            "source": {"kafka": {"bootstrapServers": ["k:9092"], "topics": ["t"]}},
            "sink": {"uri": "http://f/"},
            **spec,
        },
    }


def test_each_process_gets_its_share_of_the_rate_limit() -> None:
    connector: Connector = load_connector(
        manifest(
            scaling={"processesPerReplica": 3}, delivery={"rateLimit": {"requestsPerSecond": 10}}
        )
    )
    limit = for_one_process(connector).spec.delivery.rate_limit
    assert limit is not None
    assert limit.requests_per_second == 3.333  # rounded down: never more than the whole
    alone = load_connector(manifest(delivery={"rateLimit": {"requestsPerSecond": 10}}))
    assert for_one_process(alone) is alone


@pytest.mark.parametrize(
    ("scaling", "message"),
    [
        ({"processesPerReplica": 0}, "processesPerReplica"),
        ({"processesPerReplica": 65}, "processesPerReplica"),
        (
            {"processesPerReplica": 8, "consumersPerReplica": 13},
            "consumersPerReplica times scaling.processesPerReplica is 104",
        ),
    ],
)
def test_processes_per_replica_is_bounded(scaling: dict[str, Any], message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        load_connector(manifest(scaling=scaling))
    assert load_connector(manifest()).spec.scaling.processes_per_replica == 1
