"""The local broker is real: records produced are consumed back, in order, per partition."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, Producer

pytestmark = pytest.mark.integration


def test_records_round_trip_through_the_broker(
    kafka_bootstrap: str, make_topic: Callable[..., str]
) -> None:
    topic = make_topic(partitions=3)
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True})
    sent = {f"key-{i % 5}": [] for i in range(5)}  # type: dict[str, list[str]]
    for i in range(300):
        key = f"key-{i % 5}"
        sent[key].append(f"value-{i}")
        producer.produce(topic, key=key, value=f"value-{i}")
    assert producer.flush(30) == 0

    consumer = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "group.id": f"{topic}-reader",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    received: dict[str, list[str]] = {key: [] for key in sent}
    partitions_seen: set[int] = set()
    try:
        for _ in range(600):
            message = consumer.poll(0.5)
            if message is None:
                if sum(map(len, received.values())) == 300:
                    break
                continue
            assert message.error() is None, message.error()
            raw_key, raw_value, partition = message.key(), message.value(), message.partition()
            assert isinstance(raw_key, bytes)
            assert isinstance(raw_value, bytes)
            assert partition is not None
            received[raw_key.decode()].append(raw_value.decode())
            partitions_seen.add(partition)
    finally:
        consumer.close()

    assert received == sent  # every record, and per key (so per partition) in order
    assert len(partitions_seen) > 1
