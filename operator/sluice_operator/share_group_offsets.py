"""Where a Kafka share group stands on each partition, asked of the group's coordinator
over Kafka's own wire protocol (``kafka_wire``): the Python client (confluent-kafka 2.16)
has no admin call for it.

    DescribeShareGroupOffsets (90)   per partition, the share-partition start offset (SPSO:
                                     every record below it is done) and, from version 1
                                     (KIP-1226), the broker's own count of records at or
                                     above it not yet done
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sluice_operator.kafka_wire import (
    GROUP_ID_NOT_FOUND,
    NONE,
    RETRIABLE_COORDINATOR_ERRORS,
    BrokerConnection,
    CoordinatorMoved,
    GroupOffsetsUnavailable,
    Reader,
    Writer,
    ask_coordinator,
    error_name,
)

DESCRIBE_SHARE_GROUP_OFFSETS = 90
DESCRIBE_VERSIONS = (0, 1)  # 1 adds the per-partition Lag

UNINITIALIZED = -1
"""The start offset of a partition the share group has not started on yet."""


@dataclass(frozen=True)
class SharePartitionOffsets:
    start_offset: int
    """The share-partition start offset (SPSO): every record below it is done (accepted,
    rejected or archived). ``UNINITIALIZED`` (-1) before the group started on it."""
    lag: int | None = None
    """The broker's count of records from the start offset to the end not yet done
    (DescribeShareGroupOffsets version 1); None when the broker did not give one."""


def describe_request(group: str, partitions: Mapping[str, int]) -> bytes:
    """One group, every partition of ``partitions`` (topic → partition count)."""
    writer = Writer().compact_array_length(1).compact_string(group)
    writer.compact_array_length(len(partitions))
    for topic, count in partitions.items():
        writer.compact_string(topic).compact_array_length(count)
        for partition in range(count):
            writer.int32(partition)
        writer.no_tagged_fields()
    return writer.no_tagged_fields().no_tagged_fields().bytes()


def parse_describe(
    body: bytes, version: int, group: str
) -> dict[tuple[str, int], SharePartitionOffsets]:
    """(topic, partition) → offsets. A group the broker does not know has started on no
    partition (an empty answer); any other error is :class:`GroupOffsetsUnavailable`."""
    reader = Reader(body)
    reader.int32()  # throttle time
    offsets: dict[tuple[str, int], SharePartitionOffsets] = {}
    problems: list[str] = []
    for _ in range(max(reader.compact_array_length(), 0)):
        group_id = reader.compact_string()
        for _ in range(max(reader.compact_array_length(), 0)):
            topic = reader.compact_string() or ""
            reader.uuid()
            for _ in range(max(reader.compact_array_length(), 0)):
                partition, start = reader.int32(), reader.int64()
                reader.int32()  # leader epoch
                lag = reader.int64() if version >= 1 else -1
                code, message = reader.int16(), reader.compact_string()
                reader.skip_tagged_fields()
                if code != NONE:
                    problems.append(
                        f"{topic}[{partition}]: {error_name(code)}"
                        + (f" ({message})" if message else "")
                    )
                    continue
                offsets[(topic, partition)] = SharePartitionOffsets(
                    start, lag if lag >= 0 and start >= 0 else None
                )
            reader.skip_tagged_fields()
        code, message = reader.int16(), reader.compact_string()
        reader.skip_tagged_fields()
        if group_id != group or code == GROUP_ID_NOT_FOUND:
            continue
        detail = f" ({message})" if message else ""
        if code in RETRIABLE_COORDINATOR_ERRORS:
            raise CoordinatorMoved(f"share group {group}: {error_name(code)}{detail}")
        if code != NONE:
            raise GroupOffsetsUnavailable(
                f"offsets of share group {group}: {error_name(code)}{detail}"
            )
    reader.skip_tagged_fields()
    if problems:
        raise GroupOffsetsUnavailable(f"offsets of share group {group}: {', '.join(problems[:5])}")
    return offsets


def describe_share_group_offsets(
    servers: Iterable[str],
    settings: Mapping[str, str],
    group: str,
    partitions: Mapping[str, int],
    timeout: float,
) -> dict[tuple[str, int], SharePartitionOffsets]:
    """Where share group ``group`` stands on every partition of ``partitions`` (topic →
    partition count). Partitions it has not started on are missing from the answer (all
    of them for a group the broker does not know). ``settings``: librdkafka's security
    settings of the identity to use. Raises :class:`GroupOffsetsUnavailable`, never
    anything else the network or the broker can cause."""

    def describe(connection: BrokerConnection) -> dict[tuple[str, int], SharePartitionOffsets]:
        version = connection.version_of(
            DESCRIBE_SHARE_GROUP_OFFSETS,
            DESCRIBE_VERSIONS,
            "DescribeShareGroupOffsets",
            "share groups need Apache Kafka 4.1 or later",
        )
        body = connection.request(
            DESCRIBE_SHARE_GROUP_OFFSETS, version, describe_request(group, partitions)
        )
        return parse_describe(body, version, group)

    return ask_coordinator(
        servers, settings, group, timeout, describe, f"offsets of share group {group}"
    )
