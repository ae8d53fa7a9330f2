"""How many runtime replicas a Connector should have: a pure function of its spec, the
topics' partition count, the consumer group's lag, the previous decision and the time.

- ``partitions`` mode: ``clamp(ceil(partitions / consumersPerReplica), minReplicas,
  maxReplicas)``, maxReplicas defaulting to the partition count (more consumers than
  partitions would idle).
- ``lag`` mode, drain time (``drain_time_replicas``): enough replicas that the backlog
  drains within ``targetDrainTime`` at the throughput one replica was measured to deliver
  while it had a backlog, on top of keeping pace with what arrives. No scale-out while the
  sink throttles (429/503) or fails, or a partition is blocked: more pods would only press
  harder on a sink that asks for less. Growth at most doubles per step and waits for the
  last step to settle; shrinking waits for a whole ``stabilizationWindow`` (the cooldown)
  and at most halves per step, so the group does not rebalance in a storm.
- ``lag`` mode before any throughput is measured (no pod reported a backlog yet):
  ``ceil(lag / lagThreshold)`` replicas within the same bounds, growing at once, shrinking
  after the window. With ``minReplicas: 0`` a Connector whose lag stays at zero that long
  goes to zero, and wakes when the lag exceeds ``activationLagThreshold``; but not while
  the group, with ``initialOffset: latest``, has no position on some partition: it would
  never start (one replica starts it).
- ``spec.replicas`` (written through the scale subresource by ``kubectl scale``, an HPA or
  KEDA) overrides both; ``paused`` overrides everything.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sluice_operator.queue_scaling import queue_capacity
from sluice_runtime.config import ConnectorSpec, Scaling

SATURATED_SECONDS = 5.0
"""A backlog larger than this many seconds of delivery means the replicas worked flat out,
so their rate is their capacity. A smaller lag is records in flight and the one-second
commit interval, not a backlog."""
HEADROOM = 1.25
"""Keeping pace without a backlog: this much more capacity than the arrival rate."""
SCALE_OUT_SETTLE = 30.0
"""Seconds after a change before growing again (new pods join the group and start to
measure), at most the stabilizationWindow."""


@dataclass(frozen=True)
class DrainSignals:
    """Plain numbers for the drain-time rule, whatever the source (a consumer group's lag,
    a share group's backlog)."""

    backlog: int
    """Records waiting to be delivered."""
    delivered_per_second: float
    """Measured over the replicas that reported (0 when none did)."""
    reporting_replicas: int
    """Replicas whose delivery is in ``delivered_per_second``."""
    per_replica: float | None = None
    """Events per second one replica delivered the last time it had a backlog."""
    hold_back: str | None = None
    """Why growing would hurt (the sink throttles or fails, a partition is blocked)."""


@dataclass(frozen=True)
class DrainAdvice:
    replicas: int | None
    """None: no throughput known yet (the caller falls back to lagThreshold)."""
    per_replica: float | None
    """The capacity to remember: measured now, or the one passed in."""
    why: str


@dataclass(frozen=True)
class ScalingDecision:
    replicas: int
    why: str
    """Why this many, for events and logs: '6 partitions, 1 consumer per replica'."""
    scale_down_since: datetime | None = None
    """Lag mode: since when a smaller count has been enough (None when it is not)."""
    throughput_per_replica: float | None = None
    """Lag mode: the capacity of one replica, as last measured."""


def drain_time_replicas(signals: DrainSignals, target_drain_seconds: float) -> DrainAdvice:
    """The replicas that drain ``signals.backlog`` within ``target_drain_seconds`` while
    keeping pace with arrivals, before bounds, steps and cooldowns.

    With ``n`` replicas working flat out at ``c`` each (a backlog: the rate is the
    capacity, ``c = rate / n``), arrivals are at least ``n·c`` (else the backlog would
    shrink on its own), so draining ``B`` within ``T`` takes ``n + B / (T·c)``. Without a
    backlog the arrival rate is the delivered rate: ``HEADROOM`` times that, over the
    remembered ``c``."""
    rate, backlog = signals.delivered_per_second, signals.backlog
    per_replica = signals.per_replica
    saturated = signals.reporting_replicas > 0 and rate > 0 and backlog > rate * SATURATED_SECONDS
    if saturated:
        per_replica = rate / signals.reporting_replicas
    if per_replica is None or per_replica <= 0:
        return DrainAdvice(None, None, "throughput not measured yet")
    if saturated:
        exact = signals.reporting_replicas + backlog / (target_drain_seconds * per_replica)
        why = (
            f"backlog {backlog} at {per_replica:.3g}/s per replica drains in"
            f" {target_drain_seconds:g}s"
        )
    else:
        exact = rate * HEADROOM / per_replica
        why = f"keeping pace with {rate:.3g}/s at {per_replica:.3g}/s per replica"
    return DrainAdvice(math.ceil(exact - 1e-9), per_replica, why)


def replica_cap(scaling: Scaling, partitions: int) -> int:
    """The most replicas worth running: one consumer per partition (a replica runs
    consumersPerReplica in each of its processesPerReplica processes), at most maxReplicas."""
    useful = math.ceil(partitions / scaling.consumers_per_pod)
    return min(useful, scaling.max_replicas if scaling.max_replicas is not None else partitions)


def clamp(value: int, scaling: Scaling, partitions: int) -> int:
    # An explicit minReplicas wins over the cap: the user asked for standby consumers.
    return max(scaling.min_replicas, min(value, replica_cap(scaling, partitions)))


def _consumers(scaling: Scaling) -> str:
    n = scaling.consumers_per_pod
    processes = scaling.processes_per_replica
    within = f" ({processes} processes)" if processes > 1 else ""
    return f"{n} consumer{'s' if n != 1 else ''} per replica{within}"


def decide_replicas(
    spec: ConnectorSpec,
    partitions: int | None,
    lag: int | None,
    current: int | None,
    scale_down_since: datetime | None,
    now: datetime,
    *,
    drain: DrainSignals | None = None,
    last_scale: datetime | None = None,
    unstarted: bool = False,
) -> ScalingDecision:
    """``current`` is the previous decision (None before the first), ``partitions`` and
    ``lag`` are None when Kafka could not tell; ``drain`` is what the pods measured (None
    when none reported), ``last_scale`` when the replicas last changed, ``unstarted`` that
    the group has no position yet on some partition with ``initialOffset: latest``."""
    decision = _decide(spec, partitions, lag, current, scale_down_since, now, drain, last_scale)
    asleep = decision.replicas == 0 and not spec.paused and spec.replicas is None
    if unstarted and asleep and spec.scaling.mode == "lag":
        # Such a group starts where its first member joins: at zero it would never start,
        # and every record produced meanwhile would count as no lag and be skipped. One
        # member fixes the start; from then on the lag counts.
        return ScalingDecision(
            1, "the group has not started (initialOffset latest): one replica starts it"
        )
    return decision


def _decide(
    spec: ConnectorSpec,
    partitions: int | None,
    lag: int | None,
    current: int | None,
    scale_down_since: datetime | None,
    now: datetime,
    drain: DrainSignals | None,
    last_scale: datetime | None,
) -> ScalingDecision:
    scaling = spec.scaling
    if spec.paused:
        return ScalingDecision(0, "paused")
    if spec.replicas is not None:
        return ScalingDecision(spec.replicas, "spec.replicas (scale subresource)")
    if partitions is not None and spec.source.kafka.consumption == "queue":
        # A share group's members all read every partition: only maxReplicas caps them.
        partitions = queue_capacity(
            partitions, scaling.consumers_per_pod, scaling.min_replicas, scaling.max_replicas
        )
    if partitions is None:
        if current is not None:
            return ScalingDecision(current, "partitions unknown: kept", scale_down_since)
        return ScalingDecision(max(scaling.min_replicas, 1), "partitions unknown: minimum")
    if scaling.mode == "partitions":
        wanted = clamp(math.ceil(partitions / scaling.consumers_per_pod), scaling, partitions)
        return ScalingDecision(wanted, f"{partitions} partitions, {_consumers(scaling)}")
    if drain is not None and current:
        advice = drain_time_replicas(drain, scaling.target_drain_time)
        if advice.replicas is not None:
            return _decide_by_drain_time(
                scaling, partitions, drain, advice, current, scale_down_since, last_scale, now
            )
    decision = _decide_by_lag(scaling, partitions, lag, current, scale_down_since, now)
    known = drain.per_replica if drain is not None else None
    if drain is not None and drain.hold_back and current and decision.replicas > current:
        # The same rule as with a measured throughput: not against a sink asking for less.
        return ScalingDecision(
            current, f"{decision.why}; not growing: {drain.hold_back}", None, known
        )
    return replace(decision, throughput_per_replica=known)


def _decide_by_drain_time(
    scaling: Scaling,
    partitions: int,
    drain: DrainSignals,
    advice: DrainAdvice,
    current: int,
    scale_down_since: datetime | None,
    last_scale: datetime | None,
    now: datetime,
) -> ScalingDecision:
    assert advice.replicas is not None
    recommended = clamp(advice.replicas, scaling, partitions)
    why = f"{advice.why}, {partitions} partitions"

    def decision(replicas: int, why: str, since: datetime | None = None) -> ScalingDecision:
        return ScalingDecision(replicas, why, since, advice.per_replica)

    if recommended > current:
        if drain.hold_back is not None:
            return decision(current, f"{why}; not growing: {drain.hold_back}")
        settle = min(SCALE_OUT_SETTLE, scaling.stabilization_window)
        if last_scale is not None and now - last_scale < timedelta(seconds=settle):
            return decision(current, f"{why}; waiting for the last change to settle")
        return decision(min(recommended, max(2 * current, current + 1)), why)
    if recommended == current:
        return decision(current, why)
    since = scale_down_since or now
    if now - since >= timedelta(seconds=scaling.stabilization_window):
        step = max(recommended, current - max(1, current // 2))
        return decision(step, f"{why}, lower for {scaling.stabilization_window:g}s")
    return decision(current, f"{why}, cooling down", since)


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
