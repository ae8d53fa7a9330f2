"""Replicas in queue mode (Kafka share groups), where partitions no longer bound them.

In a share group every member reads every partition, so a replica beyond the partition
count still gets work. The group-mode rules (``scaling.py``) stay as they are and count
consumers against partitions; queue mode only hands them a different count: as many
"partitions" as ``maxReplicas`` can use, so the cap is ``maxReplicas`` alone. Without
``maxReplicas`` the cap stays where group mode puts it (the partitions, or ``minReplicas``
when that is higher): more replicas are asked for explicitly.

In ``lag`` mode the lag is the share group's backlog (:func:`share_backlog`), read from the
broker by ``share_group_offsets.py``: the ``lagThreshold`` rule and the drain-time rule
scale on it as they scale on a consumer group's lag.
"""

from __future__ import annotations

from collections.abc import Mapping

from sluice_operator.share_group_offsets import SharePartitionOffsets

Partition = tuple[str, int]


def queue_capacity(
    partitions: int, consumers_per_pod: int, min_replicas: int, max_replicas: int | None
) -> int:
    """The partition count to scale a share group's replicas against: enough for
    ``maxReplicas`` replicas of ``consumers_per_pod`` consumers each."""
    if max_replicas is None:
        return max(partitions, min_replicas * consumers_per_pod)
    return max(1, max_replicas * consumers_per_pod)


def share_backlog(
    partitions: Mapping[str, int],
    offsets: Mapping[Partition, SharePartitionOffsets],
    latest: Mapping[Partition, int],
    earliest: Mapping[Partition, int],
    from_start: bool,
) -> dict[str, int]:
    """Records the share group has yet to finish (accept, reject, or have archived), per
    topic; records in flight (acquired, not yet acknowledged) are still to do.

    On a partition the group has started on, at most the records from its start offset
    (every record below it is done) to the end: fewer when the broker counted records above
    the start that are done already (acknowledged out of order), as DescribeShareGroupOffsets
    version 1 does. Records that retention deleted are not backlog: nobody can read them.
    On a partition it has not started on (no member acknowledged anything there yet), where
    it will start: the low watermark with ``from_start`` (``initialOffset: earliest``, which
    the runtime sets as the group's ``share.auto.offset.reset``), else the end: nothing."""
    by_topic = dict.fromkeys(partitions, 0)
    for topic, count in partitions.items():
        for partition in range(count):
            where = (topic, partition)
            end = latest[where]
            low = earliest.get(where, 0)
            state = offsets.get(where)
            if state is None or state.start_offset < 0:
                start = low if from_start else end
                backlog = end - start
            else:
                backlog = end - max(state.start_offset, low)
                if state.lag is not None:
                    backlog = min(backlog, state.lag)
            by_topic[topic] += max(backlog, 0)
    return by_topic
