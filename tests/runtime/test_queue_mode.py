"""Queue mode (Kafka share groups) on the real broker: many runtimes share one partition,
a killed runtime loses nothing, and a poison record ends in the DLQ with its delivery
count."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import AcknowledgeType, Producer, ShareConsumer
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)

from testkit.function_server import ThreadedFunctionServer
from tests.runtime.test_failure_handling import poison, read_all
from tests.support import RuntimeProcess, RuntimeThread, connector_manifest, produce, wait_for

pytestmark = pytest.mark.integration

HEARTBEAT = 5  # the broker's group.share.heartbeat.interval.ms, in seconds
FAST_RETRY = {"policy": "exponential", "initialDelay": "10ms", "maxDelay": "100ms"}


def queue_manifest(name: str, bootstrap: str, topic: str, sink: str, **spec: Any) -> dict[str, Any]:
    manifest = connector_manifest(name, bootstrap, topic, sink, **spec)
    kafka = manifest["spec"]["source"]["kafka"]
    kafka["consumption"] = "queue"
    kafka["shareGroup"] = f"{name}-{topic}"
    delivery = manifest["spec"].setdefault("delivery", {})
    delivery.setdefault("ordering", "unordered")
    return manifest


def produce_in_small_batches(bootstrap: str, topic: str, values: Iterable[str]) -> None:
    """Produce as a trickling producer would: the broker hands a share group's members
    whole producer batches (librdkafka's share consumer cannot ask for fewer records), so
    one large batch would go to one runtime."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "batch.num.messages": 10})
    produce(bootstrap, topic, ((None, value) for value in values), producer=producer)


def joined(runtime: RuntimeThread) -> bool:
    readers = runtime.runtime.share_readers
    return bool(readers) and all(reader.facts is not None for reader in readers)


def offsets(events: list[dict[str, Any]]) -> list[int]:
    return [int(e["kafkaoffset"]) for e in events]


def set_group_config(bootstrap: str, group: str, **configs: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    change = ConfigResource(
        ResourceType.GROUP,
        group,
        incremental_configs=[
            ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)
            for name, value in configs.items()
        ],
    )
    admin.incremental_alter_configs([change])[change].result(30)


def test_eight_runtimes_share_one_partition_and_deliver_every_record(
    kafka_bootstrap: str, make_topic: Callable[..., str]
) -> None:
    topic = make_topic(partitions=1)
    total = 3_000
    with ThreadedFunctionServer(delay=0.02) as function:
        manifest = queue_manifest(
            "queue8",
            kafka_bootstrap,
            topic,
            function.url,
            window={"maxMessages": 10, "maxInterval": "10ms"},
        )
        runtimes = [RuntimeThread(manifest).start() for _ in range(8)]
        try:
            wait_for(lambda: all(joined(r) for r in runtimes), 60, "8 members of the group")
            # A member's first assignment comes with a heartbeat (every 5 s by default).
            time.sleep(HEARTBEAT + 1)
            values = (f'{{"i": {i}}}' for i in range(total))
            produce_in_small_batches(kafka_bootstrap, topic, values)
            wait_for(lambda: len(set(offsets(function.events()))) >= total, 120, "every record")
        finally:
            for runtime in runtimes:
                runtime.stop()
        seen = offsets(function.events())
    assert set(seen) == set(range(total))
    # One partition, yet the work was spread: group mode would give it to one runtime.
    working = [r for r in runtimes if r.runtime.metrics.delivered.value > 0]
    assert len(working) >= 6, f"only {len(working)} of 8 runtimes delivered records"


def test_a_killed_runtime_loses_nothing(
    kafka_bootstrap: str, make_topic: Callable[..., str], tmp_path: Path
) -> None:
    topic = make_topic(partitions=1)
    total = 4_000
    produce_in_small_batches(kafka_bootstrap, topic, (f'{{"i": {i}}}' for i in range(total)))
    with ThreadedFunctionServer(delay=0.05) as function:
        manifest = queue_manifest(
            "queuekill",
            kafka_bootstrap,
            topic,
            function.url,
            window={"maxMessages": 10, "maxInterval": "10ms"},
        )
        doomed = RuntimeProcess(manifest, tmp_path, "doomed").start()
        survivors = [RuntimeProcess(manifest, tmp_path, f"survivor{i}").start() for i in range(2)]
        try:
            wait_for(lambda: function.event_count >= 1_000, 90, "a quarter of the records")
            doomed.kill()  # mid-run, holding acquired records it never acknowledged
            wait_for(
                lambda: len(set(offsets(function.events()))) >= total,
                120,
                "every record after the kill",
            )
        finally:
            for survivor in survivors:
                assert survivor.terminate() == 0
        seen = offsets(function.events())
    assert set(seen) == set(range(total))


def release_first_deliveries(bootstrap: str, group: str, topic: str, times: int) -> None:
    """Be a member that acquires every record and gives it back, ``times`` times: the
    broker counts each as a delivery."""
    consumer = ShareConsumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "share.acknowledgement.mode": "explicit",
        }
    )
    consumer.subscribe([topic])
    try:
        for _ in range(times):
            deadline = time.monotonic() + 30
            messages: list[Any] = []
            while not messages and time.monotonic() < deadline:
                messages = [m for m in consumer.poll(1) if m.error() is None]
            assert messages, "the share group handed out nothing"
            for message in messages:
                consumer.acknowledge(message, AcknowledgeType.RELEASE)
            consumer.commit_sync()
    finally:
        consumer.close()


def test_poison_record_is_dead_lettered_with_its_delivery_count(
    kafka_bootstrap: str, make_topic: Callable[..., str]
) -> None:
    topic, dlq = make_topic(), make_topic(prefix="dlq")
    records = [(b"k", f'{{"i": {i}}}') for i in range(50)]
    records[17] = (b"bad-key", '{"i": 17, "poison": true}')
    produce(kafka_bootstrap, topic, records)

    def reject_poison(events: list[Any]) -> tuple[int, dict[str, str], bytes] | None:
        return (500, {}, b'{"error": "crashed"}') if poison(events) else None

    with ThreadedFunctionServer(behaviour=reject_poison) as function:
        manifest = queue_manifest(
            "queuepoison",
            kafka_bootstrap,
            topic,
            function.url,
            # One record per request: a retryable failure is not bisected.
            window={"maxMessages": 1, "maxInterval": "10ms"},
            delivery={
                "ordering": "unordered",
                "retry": {**FAST_RETRY, "maxAttempts": 3},
                "deadLetter": {"kafka": {"topic": dlq}},
            },
        )
        group = manifest["spec"]["source"]["kafka"]["shareGroup"]
        set_group_config(kafka_bootstrap, group, **{"share.auto.offset.reset": "earliest"})
        release_first_deliveries(kafka_bootstrap, group, topic, 2)
        with RuntimeThread(manifest):
            wait_for(lambda: function.event_count >= 49, 60, "the 49 good records")
            [dead] = read_all(kafka_bootstrap, dlq, 1)
        delivered = sorted(offsets(function.events()))
    assert delivered == [o for o in range(50) if o != 17]
    assert dead.key() == b"bad-key"
    headers = {k: v.decode() for k, v in dead.headers()}
    assert headers["sluice.error.offset"] == "17"
    assert headers["sluice.error.status"] == "500"
    # The first attempt plus the configured retries, on the broker's third delivery.
    assert headers["sluice.error.attempts"] == "3"
    assert headers["sluice.error.deliveries"] == "3"


def test_a_record_too_slow_for_its_last_delivery_is_dead_lettered_not_archived(
    kafka_bootstrap: str, make_topic: Callable[..., str]
) -> None:
    """The broker archives a record released on its last delivery: the runtime dead-letters
    it instead, once the lock's budget is spent."""
    topic, dlq = make_topic(), make_topic(prefix="dlq")
    produce(kafka_bootstrap, topic, [(b"k", '{"i": 0}')])
    attempts: list[float] = []

    def busy(_events: list[Any]) -> tuple[int, dict[str, str], bytes]:
        attempts.append(time.monotonic())
        return 503, {}, b"busy"

    with ThreadedFunctionServer(behaviour=busy) as function:
        manifest = queue_manifest(
            "queuelast",
            kafka_bootstrap,
            topic,
            function.url,
            delivery={
                "ordering": "unordered",
                "retry": {**FAST_RETRY, "maxAttempts": 10_000},
                "deadLetter": {"kafka": {"topic": dlq}},
            },
        )
        group = manifest["spec"]["source"]["kafka"]["shareGroup"]
        # The shortest lock the broker allows (15 s) keeps the test short.
        set_group_config(
            kafka_bootstrap,
            group,
            **{"share.auto.offset.reset": "earliest", "share.record.lock.duration.ms": "15000"},
        )
        limit = 5  # the broker's group.share.delivery.count.limit (its default)
        release_first_deliveries(kafka_bootstrap, group, topic, limit - 1)
        started = time.monotonic()
        with RuntimeThread(manifest):
            [dead] = read_all(kafka_bootstrap, dlq, 1, timeout=40)
        took = time.monotonic() - started
    assert len(attempts) > 10  # retried in the pod meanwhile
    headers = {k: v.decode() for k, v in dead.headers()}
    assert headers["sluice.error.deliveries"] == str(limit)
    assert "acquisition lock" in headers["sluice.error.reason"]
    assert 10 < took < 15  # after the budget (15 s lock less 3 s), within the lock
