"""The operator's reader of a consumer group's committed offsets (consumer_group_offsets.py):
its encodings against bytes written out by hand from Kafka's message definitions, then on
the real broker, against what librdkafka's own consumer reads, and through a coordinator
that moves or is still loading: the answer that took the whole operator down when this
was librdkafka's ListConsumerGroupOffsets (a SIGSEGV, librdkafka issue 5040)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, TopicPartition

from sluice_operator import kafka_wire
from sluice_operator.consumer_group_offsets import (
    NO_OFFSET,
    OFFSET_FETCH,
    committed_offsets,
    offset_fetch_request,
    parse_offset_fetch,
)
from sluice_operator.kafka_facts import KafkaFactsReader, KafkaIdentities, KafkaIdentity
from sluice_operator.kafka_wire import CoordinatorMoved, GroupOffsetsUnavailable, ProtocolError
from sluice_runtime.config import load_connector
from tests.broker_front import BrokerFront
from tests.operator.test_share_backlog_units import int16, int32, int64
from tests.sasl_broker import SaslListener
from tests.support import committed, make_producer, produce


def test_offset_fetch_asks_for_every_partition_of_every_topic() -> None:
    topics = b"\x03" + b"\x02a" + b"\x03" + int32(0) + int32(1) + b"\x00" + b"\x02b"
    topics += b"\x02" + int32(0) + b"\x00"
    assert offset_fetch_request("g", {"a": 2, "b": 1}, 6) == b"\x02g" + topics + b"\x00"
    # Version 7 adds RequireStable, sent false.
    assert offset_fetch_request("g", {"a": 2, "b": 1}, 7) == b"\x02g" + topics + b"\x00\x00"


def answer(partitions: list[tuple[int, int, int]], group_error: int = 0) -> bytes:
    """OffsetFetch v6/v7's answer about topic "t": (partition, offset, error) each."""
    body = int32(0) + b"\x02" + b"\x02t" + bytes([len(partitions) + 1])
    for partition, offset, error in partitions:
        body += int32(partition) + int64(offset) + int32(-1) + b"\x01" + int16(error) + b"\x00"
    return body + b"\x00" + int16(group_error) + b"\x00"


def test_offset_fetch_answer() -> None:
    assert parse_offset_fetch(answer([(0, 42, 0), (1, -1, 0)]), "g") == {
        ("t", 0): 42,
        ("t", 1): NO_OFFSET,
    }
    # The coordinator moved, or is loading the group: asked again, not given up.
    for code, name in ((16, "NOT_COORDINATOR"), (14, "COORDINATOR_LOAD_IN_PROGRESS")):
        with pytest.raises(CoordinatorMoved, match=name):
            parse_offset_fetch(answer([(0, -1, code)], group_error=code), "g")
        with pytest.raises(CoordinatorMoved, match=name):  # said of a partition only
            parse_offset_fetch(answer([(0, 5, 0), (1, -1, code)]), "g")
    with pytest.raises(GroupOffsetsUnavailable, match="GROUP_AUTHORIZATION_FAILED") as caught:
        parse_offset_fetch(answer([], group_error=30), "g")
    assert not isinstance(caught.value, CoordinatorMoved)
    with pytest.raises(GroupOffsetsUnavailable, match=r"t\[1\]: TOPIC_AUTHORIZATION_FAILED"):
        parse_offset_fetch(answer([(0, 3, 0), (1, -1, 29)]), "g")
    with pytest.raises(ProtocolError, match="ends early"):
        parse_offset_fetch(answer([(0, 3, 0)])[:-5], "g")


# --- on the real broker -------------------------------------------------------------------


def commit(bootstrap: str, group: str, offsets: dict[tuple[str, int], int]) -> None:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        consumer.commit(
            offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()], asynchronous=False
        )
    finally:
        consumer.close()


@pytest.fixture
def three_partitions(kafka_bootstrap: str, make_topic: Callable[..., str]) -> str:
    topic = make_topic(3, prefix="committed")
    producer = make_producer(kafka_bootstrap)
    for partition in range(3):
        produce(kafka_bootstrap, topic, ((None, f"{i}") for i in range(10)), partition, producer)
    return topic


@pytest.mark.integration
def test_what_a_group_committed_as_librdkafka_reads_it(
    kafka_bootstrap: str, three_partitions: str
) -> None:
    topic, group = three_partitions, f"g-{three_partitions}"
    commit(kafka_bootstrap, group, {(topic, 0): 4, (topic, 2): 10})
    offsets = committed_offsets([kafka_bootstrap], {}, group, {topic: 3}, 5.0)
    assert offsets == {(topic, 0): 4, (topic, 1): NO_OFFSET, (topic, 2): 10}
    # librdkafka's consumer says OFFSET_INVALID (-1001) where nothing is committed.
    by_consumer = {
        p: NO_OFFSET if o == -1001 else o
        for p, o in committed(kafka_bootstrap, group, topic, 3).items()
    }
    assert {p: offsets[(topic, p)] for p in range(3)} == by_consumer
    # A group nobody ever ran has committed nothing anywhere: not an error.
    fresh = committed_offsets([kafka_bootstrap], {}, f"never-{group}", {topic: 3}, 5.0)
    assert fresh == dict.fromkeys(((topic, p) for p in range(3)), NO_OFFSET)


class MovingCoordinator:
    """Answers for the broker, in turn: FindCoordinator "not available yet", then OffsetFetch
    "not the coordinator" and "loading"; after those the broker answers. ``forever``: keep
    answering "not the coordinator"."""

    def __init__(self, group: str, forever: bool = False) -> None:
        self.group = group
        self.forever = forever
        self.script = [kafka_wire.FIND_COORDINATOR, OFFSET_FETCH, OFFSET_FETCH]
        self.codes = [kafka_wire.COORDINATOR_NOT_AVAILABLE, kafka_wire.NOT_COORDINATOR]
        self.codes.append(kafka_wire.COORDINATOR_LOAD_IN_PROGRESS)
        self.refused: list[str] = []

    def __call__(self, api_key: int, version: int, correlation: int) -> bytes | None:
        if self.forever and api_key == OFFSET_FETCH:
            code = kafka_wire.NOT_COORDINATOR
        elif self.script and self.script[0] == api_key:
            self.script.pop(0)
            code = self.codes.pop(0)
        else:
            return None
        self.refused.append(kafka_wire.error_name(code))
        if api_key == kafka_wire.FIND_COORDINATOR:
            assert version >= 4
            coordinator = b"\x02" + bytes([len(self.group) + 1]) + self.group.encode()
            coordinator += int32(-1) + b"\x01" + int32(-1) + int16(code) + b"\x00" + b"\x00"
            return int32(0) + coordinator + b"\x00"
        return int32(0) + b"\x01" + int16(code) + b"\x00"  # no topics, the group's error


@pytest.mark.integration
def test_a_coordinator_that_moves_is_asked_again(
    kafka_bootstrap: str, three_partitions: str
) -> None:
    topic, group = three_partitions, f"g-{three_partitions}"
    commit(kafka_bootstrap, group, {(topic, 1): 7})
    moving = MovingCoordinator(group)
    front = BrokerFront(kafka_bootstrap, intercept=moving)
    try:
        offsets = committed_offsets([f"127.0.0.1:{front.port}"], {}, group, {topic: 3}, 5.0)
    finally:
        front.close()
    assert moving.refused == [
        "COORDINATOR_NOT_AVAILABLE",
        "NOT_COORDINATOR",
        "COORDINATOR_LOAD_IN_PROGRESS",
    ]
    assert offsets == {(topic, 0): NO_OFFSET, (topic, 1): 7, (topic, 2): NO_OFFSET}


@pytest.mark.integration
def test_a_coordinator_that_never_settles_is_reported_when_the_time_is_up(
    kafka_bootstrap: str, three_partitions: str
) -> None:
    group = f"g-{three_partitions}"
    front = BrokerFront(kafka_bootstrap, intercept=MovingCoordinator(group, forever=True))
    started = time.monotonic()
    try:
        with pytest.raises(GroupOffsetsUnavailable, match="NOT_COORDINATOR, until the time"):
            committed_offsets([f"127.0.0.1:{front.port}"], {}, group, {three_partitions: 3}, 1.5)
    finally:
        front.close()
    assert time.monotonic() - started < 10  # gave up, not hung


@pytest.mark.integration
def test_the_operator_reads_the_lag_while_the_coordinator_moves(
    kafka_bootstrap: str, three_partitions: str
) -> None:
    """The operator's whole read (KafkaFactsReader) in the process of this test: librdkafka's
    admin call would have killed it at the first NOT_COORDINATOR."""
    topic, group = three_partitions, f"g-{three_partitions}"
    commit(kafka_bootstrap, group, {(topic, 0): 10, (topic, 1): 4, (topic, 2): 0})
    front = BrokerFront(kafka_bootstrap, intercept=MovingCoordinator(group))
    connector = load_connector(
        {
            "apiVersion": "sluice.dev/v1alpha1",
            "kind": "Connector",
            "metadata": {"name": "lag", "namespace": "ns"},
            "spec": {
                "source": {
                    "kafka": {
                        "bootstrapServers": [f"127.0.0.1:{front.port}"],
                        "topics": [topic],
                        "consumerGroup": group,
                    }
                },
                "sink": {"uri": "http://f/"},
            },
        }
    )
    plain = KafkaIdentity("operator", {})
    reader = KafkaFactsReader(timeout=5.0)
    try:
        facts = reader.read(connector, KafkaIdentities(plain, plain))
    finally:
        reader.close()
        front.close()
    assert facts.partitions == {topic: 3}
    assert facts.lag == 0 + 6 + 10  # ten records a partition; committed 10, 4 and 0


@pytest.mark.integration
@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256"])
def test_on_a_sasl_listener_as_the_identity_given(
    kafka_bootstrap: str, kafka_sasl: SaslListener, three_partitions: str, mechanism: str
) -> None:
    topic, group = three_partitions, f"g-{three_partitions}"
    commit(kafka_bootstrap, group, {(topic, 2): 3})
    settings = kafka_sasl.settings(mechanism)
    offsets = committed_offsets([kafka_sasl.bootstrap], settings, group, {topic: 3}, 5.0)
    assert offsets[(topic, 2)] == 3
    wrong = kafka_sasl.settings(mechanism, password="not-the-password")
    with pytest.raises(GroupOffsetsUnavailable, match="SASL_AUTHENTICATION_FAILED") as caught:
        committed_offsets([kafka_sasl.bootstrap], wrong, group, {topic: 3}, 5.0)
    assert "not-the-password" not in str(caught.value)
