"""Duplicates when a replica joins and leaves under load (cooperative-sticky assignment,
lanes drained and offsets committed on revoke): the figure docs/delivery.md quotes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from testkit.function_server import ThreadedFunctionServer
from tests.support import (
    RuntimeProcess,
    RuntimeThread,
    committed,
    connector_manifest,
    produce,
    wait_for,
)

pytestmark = pytest.mark.integration


def owns_partitions(runtime: RuntimeProcess) -> bool:
    lines = runtime.log.read_text().splitlines() if runtime.log.exists() else []
    return any("Assigned partitions t-" in line for line in lines)


def test_a_replica_joining_and_leaving_under_load_repeats_nothing(
    kafka_bootstrap: str, make_topic: Callable[..., str], tmp_path: Path
) -> None:
    topic = make_topic(partitions=6)
    total = 30_000
    produce(kafka_bootstrap, topic, ((f"k{i % 60}", f'{{"i": {i}}}') for i in range(total)))
    # 100 ms a request of 20 records: ~1 200 records/s over 6 partitions, so each phase
    # lasts seconds and every rebalance happens with batches in flight.
    with ThreadedFunctionServer(delay=0.1) as function:
        manifest = connector_manifest(
            "dupes",
            kafka_bootstrap,
            topic,
            function.url,
            window={"maxMessages": 20, "maxInterval": "50ms"},
        )
        first = RuntimeProcess(manifest, tmp_path, "first").start()
        second = RuntimeProcess(manifest, tmp_path, "second")
        try:
            wait_for(lambda: function.event_count >= 3_000, 60, "the first records")
            second.start()  # joins: the first gives up some partitions under load
            wait_for(lambda: owns_partitions(second), 60, "the second runtime's share")
            wait_for(lambda: function.event_count >= 15_000, 90, "half the records")
            assert second.terminate() == 0  # leaves: its partitions go back under load
            wait_for(lambda: function.event_count >= total, 120, "every record")
        finally:
            assert first.terminate() == 0
        seen = Counter((int(e["kafkapartition"]), int(e["kafkaoffset"])) for e in function.events())
    assert len(seen) == total
    repeated = sum(count - 1 for count in seen.values())
    print(f"rebalance duplicates: {repeated} of {total} records")
    assert repeated == 0


def test_a_partition_that_comes_back_keeps_what_another_member_committed(
    kafka_bootstrap: str, make_topic: Callable[..., str]
) -> None:
    """A runtime gives a partition to another member of its group, which commits further;
    the partition comes back and nothing more is read from it before the runtime stops.
    Its commit on stopping must not wind the group back to where the runtime had been
    (the records in between would be delivered again by the next owner)."""
    topic = make_topic(partitions=2)
    for partition in (0, 1):
        produce(kafka_bootstrap, topic, [(None, f'{{"i": {i}}}') for i in range(10)], partition)
    with ThreadedFunctionServer() as function:
        manifest = connector_manifest("come-back", kafka_bootstrap, topic, function.url)
        runtime = RuntimeThread(manifest).start()
        group = runtime.connector.consumer_group
        try:
            wait_for(
                lambda: committed(kafka_bootstrap, group, topic, 2) == {0: 10, 1: 10},
                30,
                "both partitions delivered and committed",
            )
            other = Consumer(
                {
                    "bootstrap.servers": kafka_bootstrap,
                    "group.id": group,
                    "partition.assignment.strategy": "cooperative-sticky",
                    "enable.auto.commit": False,
                }
            )
            other.subscribe([topic])
            wait_for(lambda: bool(other.poll(0.2) or other.assignment()), 30, "a partition")
            [taken] = other.assignment()
            wait_for(lambda: len(runtime.runtime.lanes) == 1, 30, "the runtime's revoke")
            # The other member delivers five more records of its partition and commits.
            produce(kafka_bootstrap, topic, [(None, '{"late": true}')] * 5, taken.partition)
            other.commit(offsets=[TopicPartition(topic, taken.partition, 15)], asynchronous=False)
            other.close()  # the partition goes back to the runtime, which reads nothing
            wait_for(lambda: len(runtime.runtime.lanes) == 2, 30, "the partition back")
        finally:
            runtime.stop()
    expected = {0: 10, 1: 10} | {taken.partition: 15}
    assert committed(kafka_bootstrap, group, topic, 2) == expected
