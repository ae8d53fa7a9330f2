"""A queue-mode Connector's backlog, as the operator reads it from the real broker: records
its share group has not finished (accepted, rejected, archived), in flight ones included."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from confluent_kafka import AcknowledgeType, Message, ShareConsumer

from sluice_operator import share_group_offsets
from sluice_operator.kafka_facts import KafkaFactsReader, KafkaIdentities, KafkaIdentity
from sluice_operator.queue_scaling import share_backlog
from sluice_operator.share_group_offsets import (
    ShareOffsetsUnavailable,
    describe_share_group_offsets,
)
from sluice_runtime.config import Connector, load_connector
from tests.runtime.test_queue_mode import set_group_config
from tests.support import produce

pytestmark = pytest.mark.integration

PLAIN = KafkaIdentity("connector", {})


def queue_connector(bootstrap: str, topic: str, group: str, initial_offset: str) -> Connector:
    return load_connector(
        {
            "apiVersion": "sluice.dev/v1alpha1",
            "kind": "Connector",
            "metadata": {"name": "backlog", "namespace": "ns"},
            "spec": {
                "source": {
                    "kafka": {
                        "bootstrapServers": [bootstrap],
                        "topics": [topic],
                        "consumption": "queue",
                        "shareGroup": group,
                        "initialOffset": initial_offset,
                    }
                },
                "delivery": {"ordering": "unordered"},
                "sink": {"uri": "http://f/"},
            },
        }
    )


@pytest.fixture
def reader() -> Iterator[KafkaFactsReader]:
    facts = KafkaFactsReader(timeout=5.0)
    yield facts
    facts.close()


def backlog(reader: KafkaFactsReader, connector: Connector) -> tuple[int | None, Any]:
    facts = reader.read(connector, KafkaIdentities(PLAIN, PLAIN))
    return facts.lag, facts.lag_by_topic


def share_member(bootstrap: str, group: str, topic: str) -> ShareConsumer:
    consumer = ShareConsumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "share.acknowledgement.mode": "explicit",
        }
    )
    consumer.subscribe([topic])
    return consumer


def acquire(consumer: ShareConsumer, want: int) -> list[Message]:
    """One poll's worth at a time until ``want`` records are held (none acknowledged)."""
    deadline = time.monotonic() + 30
    messages: list[Message] = []
    while len(messages) < want and time.monotonic() < deadline:
        messages += [m for m in consumer.poll(1) if m.error() is None]
    assert len(messages) == want, f"acquired {len(messages)} of {want}"
    return messages


def settle(consumer: ShareConsumer, messages: list[Message], how: Callable[[int], Any]) -> None:
    for message in messages:
        offset = message.offset()
        assert offset is not None
        consumer.acknowledge(message, how(offset))
    consumer.commit_sync()


def test_the_backlog_is_what_the_share_group_has_not_finished(
    kafka_bootstrap: str, make_topic: Callable[..., str], reader: KafkaFactsReader
) -> None:
    topic = make_topic(partitions=2, prefix="backlog")
    group = f"backlog-{topic}"
    set_group_config(kafka_bootstrap, group, **{"share.auto.offset.reset": "earliest"})
    connector = queue_connector(kafka_bootstrap, topic, group, "earliest")
    produce(kafka_bootstrap, topic, ((None, f"{i}") for i in range(10)), partition=0)
    assert backlog(reader, connector) == (10, {topic: 10})  # nobody has started

    consumer = share_member(kafka_bootstrap, group, topic)
    try:
        held = acquire(consumer, 10)
        assert backlog(reader, connector)[0] == 10  # acquired is not finished

        # Out of order: 0 rejected (archived), 5-9 accepted, 1-4 released for redelivery.
        def first_round(offset: int) -> Any:
            if offset == 0:
                return AcknowledgeType.REJECT
            return AcknowledgeType.ACCEPT if offset >= 5 else AcknowledgeType.RELEASE

        settle(consumer, held, first_round)
        # 4 records left, though the start offset alone would say 9 or more (the broker
        # persists it lazily): the broker's own count of what is done above it is used.
        assert backlog(reader, connector) == (4, {topic: 4})

        produce(kafka_bootstrap, topic, ((None, f"{i}") for i in range(3)), partition=1)
        assert backlog(reader, connector) == (7, {topic: 7})

        again = acquire(consumer, 7)  # the 4 released ones and partition 1's 3
        assert backlog(reader, connector)[0] == 7
        settle(consumer, again, lambda _offset: AcknowledgeType.ACCEPT)
        assert backlog(reader, connector) == (0, {topic: 0})
    finally:
        consumer.close()


def test_a_share_group_nobody_started_counts_from_where_it_will_start(
    kafka_bootstrap: str, make_topic: Callable[..., str], reader: KafkaFactsReader
) -> None:
    topic = make_topic(partitions=3, prefix="backlog")
    produce(kafka_bootstrap, topic, ((None, f"{i}") for i in range(12)))
    never_used = f"never-{topic}"
    earliest = queue_connector(kafka_bootstrap, topic, never_used, "earliest")
    latest = queue_connector(kafka_bootstrap, topic, never_used, "latest")
    assert backlog(reader, earliest)[0] == 12  # the runtime will start at the beginning
    assert backlog(reader, latest)[0] == 0  # ... or at the end: nothing to catch up on


def test_version_0_reads_the_start_offset(
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Brokers without KIP-1226's lag answer version 0: the start offset alone, which the
    broker persists lazily (it may trail what is done), so the backlog read from it is
    never below the truth."""
    topic = make_topic(prefix="backlog")
    group = f"v0-{topic}"
    set_group_config(kafka_bootstrap, group, **{"share.auto.offset.reset": "earliest"})
    produce(kafka_bootstrap, topic, ((None, f"{i}") for i in range(8)))
    consumer = share_member(kafka_bootstrap, group, topic)
    try:
        held = acquire(consumer, 8)
        settle(
            consumer,
            held,
            lambda o: AcknowledgeType.ACCEPT if o < 3 else AcknowledgeType.RELEASE,
        )
    finally:
        consumer.close()
    monkeypatch.setattr(share_group_offsets, "DESCRIBE_VERSIONS", (0, 0))
    offsets = describe_share_group_offsets([kafka_bootstrap], {}, group, {topic: 1}, 5.0)
    assert 0 <= offsets[(topic, 0)].start_offset <= 3  # 3 records accepted, in order
    assert offsets[(topic, 0)].lag is None
    backlog = share_backlog({topic: 1}, offsets, {(topic, 0): 8}, {(topic, 0): 0}, True)
    assert backlog[topic] >= 5


def test_what_cannot_be_read_is_unknown_not_a_crash(
    kafka_bootstrap: str, make_topic: Callable[..., str], reader: KafkaFactsReader
) -> None:
    topic = make_topic(prefix="backlog")
    group = f"unread-{topic}"
    with pytest.raises(ShareOffsetsUnavailable, match="SASL is not implemented"):
        describe_share_group_offsets(
            [kafka_bootstrap], {"security.protocol": "SASL_SSL"}, group, {topic: 1}, 2.0
        )
    # TLS towards a plaintext listener: the handshake fails, the reader says so.
    with pytest.raises(ShareOffsetsUnavailable, match=r"no bootstrap server answered.*SSL"):
        describe_share_group_offsets(
            [kafka_bootstrap], {"security.protocol": "SSL"}, group, {topic: 1}, 2.0
        )
    with pytest.raises(ShareOffsetsUnavailable, match="no bootstrap server answered"):
        describe_share_group_offsets(["127.0.0.1:1"], {}, group, {topic: 1}, 2.0)

    # In the operator's reader (the hook read() calls in queue mode), with a SASL identity
    # (the admin client would speak it, this module does not): unknown, so the lag rules
    # keep the replica count.
    connector = queue_connector(kafka_bootstrap, topic, group, "earliest")
    sasl = KafkaIdentity("connector", {"security.protocol": "SASL_PLAINTEXT"})
    admin = reader._client([kafka_bootstrap], PLAIN)[1]
    assert reader._share_backlog(admin, connector, {topic: 1}, PLAIN) == {topic: 0}
    assert reader._share_backlog(admin, connector, {topic: 1}, sasl) is None
