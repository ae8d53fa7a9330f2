"""How many runtime replicas a Connector should have: a pure function of its spec, the
topics' partition count, the consumer group's lag, the previous decision and the time.

- ``partitions`` mode: ``clamp(ceil(partitions / consumersPerReplica), minReplicas,
  maxReplicas)``, maxReplicas defaulting to the partition count (more consumers than
  partitions would idle).
- ``lag`` mode: ``ceil(lag / lagThreshold)`` replicas within the same bounds. Growing is
  immediate; shrinking waits until fewer replicas would have done for a whole
  ``stabilizationWindow`` (so a burst does not flap the Deployment). With
  ``minReplicas: 0`` a Connector whose lag stays at zero that long goes to zero, and wakes
  when the lag exceeds ``activationLagThreshold``.
- ``spec.replicas`` (written through the scale subresource by ``kubectl scale``, an HPA or
  KEDA) overrides both; ``paused`` overrides everything.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sluice_operator.queue_scaling import queue_capacity
from sluice_runtime.config import ConnectorSpec, Scaling


@dataclass(frozen=True)
class ScalingDecision:
    replicas: int
    why: str
    """Why this many, for events and logs: '6 partitions, 1 consumer per replica'."""
    scale_down_since: datetime | None = None
    """Lag mode: since when a smaller count has been enough (None when it is not)."""


def replica_cap(scaling: Scaling, partitions: int) -> int:
    """The most replicas worth running: one consumer per partition, at most maxReplicas."""
    useful = math.ceil(partitions / scaling.consumers_per_replica)
    return min(useful, scaling.max_replicas if scaling.max_replicas is not None else partitions)


def clamp(value: int, scaling: Scaling, partitions: int) -> int:
    # An explicit minReplicas wins over the cap: the user asked for standby consumers.
    return max(scaling.min_replicas, min(value, replica_cap(scaling, partitions)))


def _consumers(scaling: Scaling) -> str:
    n = scaling.consumers_per_replica
    return f"{n} consumer{'s' if n != 1 else ''} per replica"


def decide_replicas(
    spec: ConnectorSpec,
    partitions: int | None,
    lag: int | None,
    current: int | None,
    scale_down_since: datetime | None,
    now: datetime,
) -> ScalingDecision:
    """``current`` is the previous decision (None before the first), ``partitions`` and
    ``lag`` are None when Kafka could not tell."""
    scaling = spec.scaling
    if spec.paused:
        return ScalingDecision(0, "paused")
    if spec.replicas is not None:
        return ScalingDecision(spec.replicas, "spec.replicas (scale subresource)")
    if partitions is not None and spec.source.kafka.consumption == "queue":
        # A share group's members all read every partition: only maxReplicas caps them.
        partitions = queue_capacity(
            partitions, scaling.consumers_per_replica, scaling.min_replicas, scaling.max_replicas
        )
    if partitions is None:
        if current is not None:
            return ScalingDecision(current, "partitions unknown: kept", scale_down_since)
        return ScalingDecision(max(scaling.min_replicas, 1), "partitions unknown: minimum")
    if scaling.mode == "partitions":
        wanted = clamp(math.ceil(partitions / scaling.consumers_per_replica), scaling, partitions)
        return ScalingDecision(wanted, f"{partitions} partitions, {_consumers(scaling)}")
    return _decide_by_lag(scaling, partitions, lag, current, scale_down_since, now)


def _decide_by_lag(
    scaling: Scaling,
    partitions: int,
    lag: int | None,
    current: int | None,
    scale_down_since: datetime | None,
    now: datetime,
) -> ScalingDecision:
    if lag is None:
        kept = current if current is not None else clamp(1, scaling, partitions)
        return ScalingDecision(kept, "lag unknown: kept", scale_down_since)
    recommended = clamp(math.ceil(lag / scaling.lag_threshold), scaling, partitions)
    why = f"lag {lag}, {scaling.lag_threshold} per replica, {partitions} partitions"
    if current == 0 or (current is None and recommended == 0):
        if lag > scaling.activation_lag_threshold:
            return ScalingDecision(max(recommended, 1), f"woke up: {why}")
        return ScalingDecision(0, f"idle: lag {lag} within the activation threshold")
    if current is None or recommended >= current:
        return ScalingDecision(recommended, why)
    since = scale_down_since or now
    if now - since >= timedelta(seconds=scaling.stabilization_window):
        return ScalingDecision(recommended, f"{why}, lower for {scaling.stabilization_window:g}s")
    return ScalingDecision(current, f"{why}, stabilizing", since)
