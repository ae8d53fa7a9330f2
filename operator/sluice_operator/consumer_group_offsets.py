"""The offsets a consumer group has committed, asked of its coordinator over Kafka's own wire
protocol (``kafka_wire``).

    OffsetFetch (9, v6-v7)           per partition asked about, the committed offset (-1:
                                     none); v6 is the first flexible version (Kafka 2.4),
                                     v7 adds RequireStable (sent false: the runtime does
                                     not commit in transactions)

Why not librdkafka's ListConsumerGroupOffsets: in an admin client (which has no consumer
group of its own) an answer of NOT_COORDINATOR makes librdkafka ask its own consumer group
to look the coordinator up again, and it has none: the process dies of SIGSEGV
(rd_kafka_cgrp_op on a null group; librdkafka issue 5040, still so in 2.16). A group whose
coordinator moves (a broker restarting) or is still loading (a new cluster) answers just
that. Here it is one more coordinator lookup (:func:`kafka_wire.ask_coordinator`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sluice_operator.kafka_wire import (
    NONE,
    RETRIABLE_COORDINATOR_ERRORS,
    SINCE_KAFKA_2_4,
    BrokerConnection,
    CoordinatorMoved,
    GroupOffsetsUnavailable,
    Reader,
    Writer,
    ask_coordinator,
    error_name,
)

OFFSET_FETCH = 9
OFFSET_FETCH_VERSIONS = (6, 7)

NO_OFFSET = -1
"""The committed offset of a partition the group has committed nothing on."""


def offset_fetch_request(group: str, partitions: Mapping[str, int], version: int) -> bytes:
    """One group, every partition of ``partitions`` (topic → partition count)."""
    writer = Writer().compact_string(group).compact_array_length(len(partitions))
    for topic, count in partitions.items():
        writer.compact_string(topic).compact_array_length(count)
        for partition in range(count):
            writer.int32(partition)
        writer.no_tagged_fields()
    if version >= 7:
        writer.int8(0)  # RequireStable: false
    return writer.no_tagged_fields().bytes()


def parse_offset_fetch(body: bytes, group: str) -> dict[tuple[str, int], int]:
    """(topic, partition) → committed offset (:data:`NO_OFFSET` for none). A group the
    broker does not know has committed nothing: every offset is -1, no error."""
    reader = Reader(body)
    reader.int32()  # throttle time
    offsets: dict[tuple[str, int], int] = {}
    problems: list[str] = []
    moved: int | None = None
    for _ in range(max(reader.compact_array_length(), 0)):
        topic = reader.compact_string() or ""
        for _ in range(max(reader.compact_array_length(), 0)):
            partition, offset = reader.int32(), reader.int64()
            reader.int32()  # the committed leader epoch
            reader.compact_string()  # the metadata committed with the offset
            code = reader.int16()
            reader.skip_tagged_fields()
            if code == NONE:
                offsets[(topic, partition)] = offset
            elif code in RETRIABLE_COORDINATOR_ERRORS:
                moved = code
            else:
                problems.append(f"{topic}[{partition}]: {error_name(code)}")
        reader.skip_tagged_fields()
    code = reader.int16()
    reader.skip_tagged_fields()
    if code == NONE and moved is not None:
        code = moved  # a partition's error the group's did not repeat
    if code in RETRIABLE_COORDINATOR_ERRORS:
        raise CoordinatorMoved(f"group {group}: {error_name(code)}")
    if code != NONE:
        raise GroupOffsetsUnavailable(f"offsets of group {group}: {error_name(code)}")
    if problems:
        raise GroupOffsetsUnavailable(f"offsets of group {group}: {', '.join(problems[:5])}")
    return offsets


def committed_offsets(
    servers: Iterable[str],
    settings: Mapping[str, str],
    group: str,
    partitions: Mapping[str, int],
    timeout: float,
) -> dict[tuple[str, int], int]:
    """What consumer group ``group`` has committed on every partition of ``partitions``
    (topic → partition count): (topic, partition) → offset, :data:`NO_OFFSET` where it
    has committed nothing. ``settings``: librdkafka's security settings of the identity to
    use. Raises :class:`GroupOffsetsUnavailable`, never anything else the network or the
    broker can cause."""

    def fetch(connection: BrokerConnection) -> dict[tuple[str, int], int]:
        version = connection.version_of(
            OFFSET_FETCH, OFFSET_FETCH_VERSIONS, "OffsetFetch", SINCE_KAFKA_2_4
        )
        body = connection.request(
            OFFSET_FETCH, version, offset_fetch_request(group, partitions, version)
        )
        return parse_offset_fetch(body, group)

    return ask_coordinator(servers, settings, group, timeout, fetch, f"offsets of group {group}")
