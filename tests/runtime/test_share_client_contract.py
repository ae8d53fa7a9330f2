"""What queue mode relies on from the share consumer (confluent-kafka's ShareConsumer, a
preview), checked against the real broker: in explicit acknowledgement mode it accepts
nothing on its own. A client release that broke this would break at-least-once."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from confluent_kafka import AcknowledgeType, IllegalStateException, ShareConsumer

from tests.runtime.test_queue_mode import set_group_config
from tests.support import produce

pytestmark = pytest.mark.integration


@pytest.fixture
def share_topic(kafka_bootstrap: str, make_topic: Callable[..., str]) -> tuple[str, str]:
    """A topic with 10 records and a share group that reads it from the start."""
    topic = make_topic()
    produce(kafka_bootstrap, topic, ((None, f"{i}") for i in range(10)))
    group = f"contract-{topic}"
    set_group_config(kafka_bootstrap, group, **{"share.auto.offset.reset": "earliest"})
    return topic, group


@pytest.fixture
def member(kafka_bootstrap: str, share_topic: tuple[str, str]) -> Iterator[Callable[[], Any]]:
    consumers: list[ShareConsumer] = []

    def make() -> ShareConsumer:
        consumer = ShareConsumer(
            {
                "bootstrap.servers": kafka_bootstrap,
                "group.id": share_topic[1],
                "share.acknowledgement.mode": "explicit",
            }
        )
        consumer.subscribe([share_topic[0]])
        consumers.append(consumer)
        return consumer

    yield make
    for consumer in consumers:
        consumer.close()


def acquire(consumer: ShareConsumer, want: int = 10) -> list[Any]:
    deadline = time.monotonic() + 30
    messages: list[Any] = []
    while len(messages) < want and time.monotonic() < deadline:
        messages += [m for m in consumer.poll(1) if m.error() is None]
    return messages


def test_close_releases_what_was_not_acknowledged(member: Callable[[], ShareConsumer]) -> None:
    first = member()
    assert [m.delivery_count() for m in acquire(first)] == [1] * 10
    first.close()
    again = acquire(member())
    assert sorted(m.offset() for m in again) == list(range(10))
    assert {m.delivery_count() for m in again} == {2}  # released, not accepted


def test_no_poll_before_every_record_is_acknowledged(member: Callable[[], ShareConsumer]) -> None:
    consumer = member()
    messages = acquire(consumer)
    with pytest.raises(IllegalStateException, match="not been acknowledged"):
        consumer.poll(1)
    # Accept some and release the rest: only the released come back, delivered again.
    for message in messages:
        kind = AcknowledgeType.ACCEPT if message.offset() < 5 else AcknowledgeType.RELEASE
        consumer.acknowledge(message, kind)
    consumer.commit_sync()
    again = acquire(consumer, 5)
    assert sorted(m.offset() for m in again) == [5, 6, 7, 8, 9]
    assert {m.delivery_count() for m in again} == {2}
