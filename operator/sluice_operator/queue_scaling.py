"""Replicas in queue mode (Kafka share groups), where partitions no longer bound them.

In a share group every member reads every partition, so a replica beyond the partition
count still gets work. The group-mode rules (``scaling.py``) stay as they are and count
consumers against partitions; queue mode only hands them a different count: as many
"partitions" as ``maxReplicas`` can use, so the cap is ``maxReplicas`` alone. Without
``maxReplicas`` the cap stays where group mode puts it (the partitions, or ``minReplicas``
when that is higher): more replicas are asked for explicitly.

In ``lag`` mode the lag is the share group's backlog once the operator can read it (see
``kafka_facts.py``); until then it is unknown and the count is kept.
"""

from __future__ import annotations


def queue_capacity(
    partitions: int, consumers_per_replica: int, min_replicas: int, max_replicas: int | None
) -> int:
    """The partition count to scale a share group's replicas against: enough for
    ``maxReplicas`` replicas of ``consumers_per_replica`` consumers each."""
    if max_replicas is None:
        return max(partitions, min_replicas * consumers_per_replica)
    return max(1, max_replicas * consumers_per_replica)
