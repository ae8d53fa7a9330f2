"""The encodings of kafka_wire.py and share_group_offsets.py against bytes written out by
hand from Kafka's message definitions, the backlog arithmetic, and the drain-time rule fed
a share group's backlog. The same code against the real broker: test_share_backlog.py and
test_operator_queue_backlog.py."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sluice_operator.kafka_wire import (
    Coordinator,
    CoordinatorMoved,
    GroupOffsetsUnavailable,
    ProtocolError,
    Writer,
    find_coordinator_request,
    parse_api_versions,
    parse_find_coordinator,
    request_header,
    transport,
)
from sluice_operator.queue_scaling import share_backlog
from sluice_operator.scaling import DrainSignals, decide_replicas
from sluice_operator.share_group_offsets import (
    SharePartitionOffsets,
    describe_request,
    parse_describe,
)
from sluice_runtime.config import ConnectorSpec

TOPIC_ID = bytes(range(16))


def int16(value: int) -> bytes:
    return value.to_bytes(2, "big", signed=True)


def int32(value: int) -> bytes:
    return value.to_bytes(4, "big", signed=True)


def int64(value: int) -> bytes:
    return value.to_bytes(8, "big", signed=True)


def test_request_header_keeps_the_old_client_id_length_and_ends_with_tags() -> None:
    assert request_header(90, 1, 7) == (
        b"\x00\x5a" + b"\x00\x01" + b"\x00\x00\x00\x07" + b"\x00\x0fsluice-operator" + b"\x00"
    )


def test_varints_and_compact_lengths() -> None:
    assert Writer().uvarint(300).bytes() == b"\xac\x02"
    assert Writer().compact_string(None).compact_string("").bytes() == b"\x00\x01"
    assert Writer().compact_array_length(None).compact_array_length(2).bytes() == b"\x00\x03"


def test_find_coordinator_asks_for_one_group_key() -> None:
    assert find_coordinator_request("g1", 4) == b"\x00" + b"\x02" + b"\x03g1" + b"\x00"


def test_describe_asks_for_every_partition_of_every_topic() -> None:
    assert (
        describe_request("g", {"t": 2})
        == (
            b"\x02" + b"\x02g"  # one group
            b"\x02" + b"\x02t" + b"\x03" + int32(0) + int32(1) + b"\x00"  # one topic, 2 partitions
            b"\x00"  # the group's tags
            b"\x00"  # the request's tags
        )
    )


def partition(index: int, start: int, lag: int | None, error: int = 0) -> bytes:
    version_1 = int64(lag) if lag is not None else b""
    return int32(index) + int64(start) + int32(0) + version_1 + int16(error) + b"\x00" + b"\x00"


def describe_answer(partitions: list[bytes], group_error: int = 0, group: str = "g") -> bytes:
    topic = b"\x02t" + TOPIC_ID + bytes([len(partitions) + 1]) + b"".join(partitions) + b"\x00"
    return (
        int32(0)  # throttle
        + b"\x02"
        + bytes([len(group) + 1])
        + group.encode()
        + b"\x02"
        + topic
        + int16(group_error)
        + b"\x00"  # null error message
        + b"\x00"
        + b"\x01\x05\x02\xff\xff"  # one tagged field (tag 5, 2 bytes) the parser skips
    )


def test_describe_answer_version_1_with_the_brokers_lag() -> None:
    answer = describe_answer([partition(0, 5, 2), partition(1, -1, -1)])
    assert parse_describe(answer, 1, "g") == {
        ("t", 0): SharePartitionOffsets(5, 2),
        ("t", 1): SharePartitionOffsets(-1, None),
    }


def test_describe_answer_version_0_has_no_lag() -> None:
    answer = describe_answer([partition(0, 7, None)])
    assert parse_describe(answer, 0, "g") == {("t", 0): SharePartitionOffsets(7, None)}


def test_describe_errors() -> None:
    # A group the broker does not know has started nowhere.
    assert parse_describe(describe_answer([], group_error=69), 1, "g") == {}
    with pytest.raises(GroupOffsetsUnavailable, match="GROUP_AUTHORIZATION_FAILED"):
        parse_describe(describe_answer([], group_error=30), 1, "g")
    with pytest.raises(GroupOffsetsUnavailable, match=r"t\[0\]: TOPIC_AUTHORIZATION_FAILED"):
        parse_describe(describe_answer([partition(0, 0, 0, error=29)]), 1, "g")
    with pytest.raises(ProtocolError, match="ends early"):
        parse_describe(describe_answer([partition(0, 5, 2)])[:-9], 1, "g")


def coordinator_answer(error: int = 0) -> bytes:
    return (
        int32(0)
        + b"\x02"
        + b"\x02g"
        + int32(1)
        + b"\x0akafka-0.k"
        + int32(9092)
        + int16(error)
        + b"\x00"
        + b"\x00"
        + b"\x00"
    )


def test_find_coordinator_answer() -> None:
    assert parse_find_coordinator(coordinator_answer(), "g", 4) == Coordinator(1, "kafka-0.k", 9092)
    # Not elected yet (a new cluster): asked again, not given up.
    with pytest.raises(CoordinatorMoved, match="COORDINATOR_NOT_AVAILABLE"):
        parse_find_coordinator(coordinator_answer(error=15), "g", 4)
    with pytest.raises(GroupOffsetsUnavailable, match="GROUP_AUTHORIZATION_FAILED") as caught:
        parse_find_coordinator(coordinator_answer(error=30), "g", 4)
    assert not isinstance(caught.value, CoordinatorMoved)


def test_find_coordinator_version_3_answer() -> None:
    # Version 3 (Kafka 2.4-2.8): one key, no key in the answer.
    answer = int32(0) + int16(0) + b"\x00" + int32(2) + b"\x04k-2" + int32(9093) + b"\x00"
    assert parse_find_coordinator(answer, "g", 3) == Coordinator(2, "k-2", 9093)
    loading = int32(0) + int16(14) + b"\x00" + int32(-1) + b"\x01" + int32(-1) + b"\x00"
    with pytest.raises(CoordinatorMoved, match="COORDINATOR_LOAD_IN_PROGRESS"):
        parse_find_coordinator(loading, "g", 3)


def test_api_versions_answer() -> None:
    answer = (
        int16(0)
        + b"\x03"
        + int16(18)
        + int16(0)
        + int16(4)
        + b"\x00"
        + int16(90)
        + int16(0)
        + int16(1)
        + b"\x00"
        + int32(0)
        + b"\x00"
    )
    assert parse_api_versions(answer) == {18: (0, 4), 90: (0, 1)}
    with pytest.raises(GroupOffsetsUnavailable, match="UNSUPPORTED_VERSION"):
        parse_api_versions(int16(35) + b"\x01" + int32(0) + b"\x00")


def test_transport_is_tls_for_ssl_and_sasl_ssl_only() -> None:
    assert transport({}) is None
    assert transport({"security.protocol": "PLAINTEXT"}) is None
    assert transport({"security.protocol": "SASL_PLAINTEXT"}) is None
    assert transport({"security.protocol": "SSL"}) is not None  # the system's CAs
    assert transport({"security.protocol": "SASL_SSL"}) is not None
    for protocol in ("SSL", "SASL_SSL"):
        with pytest.raises(GroupOffsetsUnavailable, match="TLS settings do not load"):
            transport({"security.protocol": protocol, "ssl.ca.pem": "not a certificate"})
    with pytest.raises(GroupOffsetsUnavailable, match="speaks PLAINTEXT, SSL, SASL_PLAINTEXT"):
        transport({"security.protocol": "KERBEROS_OVER_CARRIER_PIGEON"})


WATERMARKS = {("t", 0): 100, ("t", 1): 50}


def test_backlog_takes_the_smaller_of_the_start_offset_and_the_brokers_count() -> None:
    offsets = {("t", 0): SharePartitionOffsets(40, 10), ("t", 1): SharePartitionOffsets(45)}
    assert share_backlog({"t": 2}, offsets, WATERMARKS, {}, True) == {"t": 10 + 5}


def test_backlog_ignores_what_retention_deleted() -> None:
    offsets = {("t", 0): SharePartitionOffsets(40)}
    low = {("t", 0): 90, ("t", 1): 0}
    assert share_backlog({"t": 2}, offsets, WATERMARKS, low, False) == {"t": 10}


def test_backlog_of_partitions_not_started_depends_on_where_the_group_starts() -> None:
    low = {("t", 0): 20, ("t", 1): 0}
    assert share_backlog({"t": 2}, {}, WATERMARKS, low, True) == {"t": 80 + 50}
    assert share_backlog({"t": 2}, {}, WATERMARKS, low, False) == {"t": 0}


def test_the_drain_time_rule_scales_a_share_group_beyond_its_partitions() -> None:
    spec = ConnectorSpec.model_validate(
        {
            "source": {
                "kafka": {"bootstrapServers": ["k:9092"], "topics": ["t"], "consumption": "queue"}
            },
            "delivery": {"ordering": "unordered"},
            "scaling": {"mode": "lag", "targetDrainTime": "60s", "maxReplicas": 10},
            "sink": {"uri": "http://f/"},
        }
    )
    now = datetime(2025, 1, 1, tzinfo=UTC)
    # 2 replicas flat out at 50/s each on 1 partition, a backlog of 24,000: 2 + 8 = 10 wanted,
    # at most double per step.
    busy = DrainSignals(backlog=24_000, delivered_per_second=100, reporting_replicas=2)
    first = decide_replicas(spec, 1, 24_000, 2, None, now, drain=busy)
    assert first.replicas == 4
    later = DrainSignals(backlog=24_000, delivered_per_second=200, reporting_replicas=4)
    assert decide_replicas(spec, 1, 24_000, 8, None, now, drain=later).replicas == 10
