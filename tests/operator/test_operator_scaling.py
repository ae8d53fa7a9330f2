"""How many replicas a Connector gets, by partitions and by lag."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sluice_operator.scaling import DrainSignals, decide_replicas, drain_time_replicas
from sluice_runtime.config import ConnectorSpec

NOW = datetime(2025, 1, 1, tzinfo=UTC)


def spec(**fields: Any) -> ConnectorSpec:
    return ConnectorSpec.model_validate(
        {
            "source": {"kafka": {"bootstrapServers": ["k:9092"], "topics": ["t"]}},
            "sink": {"uri": "http://f/"},
            **fields,
        }
    )


@pytest.mark.parametrize(
    ("scaling", "partitions", "replicas"),
    [
        ({}, 6, 6),
        ({}, 1, 1),
        ({"maxReplicas": 4}, 8, 4),
        ({"consumersPerReplica": 3}, 6, 2),
        ({"consumersPerReplica": 4}, 6, 2),  # ceil
        ({"minReplicas": 3}, 2, 3),  # an explicit minimum wins over the cap
        ({"minReplicas": 0}, 5, 5),
        ({"maxReplicas": 10}, 4, 4),  # never more consumers than partitions
        # Every runtime process of a replica runs its own consumers.
        ({"processesPerReplica": 2}, 8, 4),
        ({"processesPerReplica": 2, "consumersPerReplica": 2}, 6, 2),  # ceil(6 / 4)
        ({"processesPerReplica": 4}, 2, 1),
        ({"processesPerReplica": 4, "minReplicas": 2}, 2, 2),
    ],
)
def test_partition_rule(scaling: dict[str, Any], partitions: int, replicas: int) -> None:
    decision = decide_replicas(spec(scaling=scaling), partitions, None, None, None, NOW)
    assert decision.replicas == replicas


QUEUE = {"kafka": {"bootstrapServers": ["k:9092"], "topics": ["t"], "consumption": "queue"}}


@pytest.mark.parametrize(
    ("scaling", "partitions", "replicas"),
    [
        ({}, 1, 1),  # nothing asked: as many as in group mode
        ({"minReplicas": 8}, 1, 8),
        ({"maxReplicas": 8}, 1, 8),  # partitions mode runs the most it may
        ({"maxReplicas": 12, "consumersPerReplica": 2}, 6, 12),
        ({"mode": "lag", "maxReplicas": 8}, 1, 1),  # backlog unknown: the minimum
    ],
)
def test_queue_mode_is_not_capped_by_partitions(
    scaling: dict[str, Any], partitions: int, replicas: int
) -> None:
    queue = spec(source=QUEUE, delivery={"ordering": "unordered"}, scaling=scaling)
    assert decide_replicas(queue, partitions, None, None, None, NOW).replicas == replicas


def test_queue_mode_scales_on_the_backlog_beyond_the_partitions() -> None:
    scaling = {"mode": "lag", "maxReplicas": 8, "lagThreshold": 100}
    queue = spec(source=QUEUE, delivery={"ordering": "unordered"}, scaling=scaling)
    assert decide_replicas(queue, 1, 650, 1, None, NOW).replicas == 7
    assert decide_replicas(queue, 1, 5000, 1, None, NOW).replicas == 8


def test_paused_and_scale_subresource_override_the_rule() -> None:
    assert decide_replicas(spec(paused=True), 6, 0, 6, None, NOW).replicas == 0
    assert decide_replicas(spec(replicas=2), 6, 0, 6, None, NOW).replicas == 2
    assert decide_replicas(spec(replicas=2, paused=True), 6, 0, 6, None, NOW).replicas == 0


def test_unknown_partitions_keep_what_runs() -> None:
    assert decide_replicas(spec(), None, None, 5, None, NOW).replicas == 5
    assert decide_replicas(spec(), None, None, None, None, NOW).replicas == 1


LAG = {"mode": "lag", "lagThreshold": 100, "stabilizationWindow": "60s"}


def test_lag_scaling_grows_at_once_up_to_the_partition_cap() -> None:
    s = spec(scaling=LAG)
    assert decide_replicas(s, 8, 250, 1, None, NOW).replicas == 3
    assert decide_replicas(s, 8, 100_000, 3, None, NOW).replicas == 8
    capped = spec(scaling={**LAG, "maxReplicas": 5})
    assert decide_replicas(capped, 8, 100_000, 3, None, NOW).replicas == 5


def test_lag_scaling_shrinks_only_after_the_stabilization_window() -> None:
    s = spec(scaling=LAG)
    first = decide_replicas(s, 8, 50, 6, None, NOW)
    assert first.replicas == 6
    assert first.scale_down_since == NOW
    later = NOW + timedelta(seconds=30)
    held = decide_replicas(s, 8, 50, 6, first.scale_down_since, later)
    assert held.replicas == 6
    assert held.scale_down_since == NOW
    done = decide_replicas(s, 8, 50, 6, held.scale_down_since, NOW + timedelta(seconds=61))
    assert done.replicas == 1
    assert done.scale_down_since is None
    # A burst in between starts the window again.
    burst = decide_replicas(s, 8, 900, 6, NOW, later)
    assert burst.replicas == 8
    assert burst.scale_down_since is None


def test_lag_scaling_to_zero_and_waking_up() -> None:
    s = spec(scaling={**LAG, "minReplicas": 0, "activationLagThreshold": 10})
    idle = decide_replicas(s, 4, 0, 1, None, NOW)
    assert idle.replicas == 1  # not before the window
    asleep = decide_replicas(s, 4, 0, 1, NOW, NOW + timedelta(seconds=60))
    assert asleep.replicas == 0
    assert decide_replicas(s, 4, 10, 0, None, NOW).replicas == 0  # within the threshold
    woke = decide_replicas(s, 4, 11, 0, None, NOW)
    assert woke.replicas == 1
    assert decide_replicas(s, 4, 350, 0, None, NOW).replicas == 4


def test_an_unstarted_group_reading_from_latest_keeps_one_replica_to_start_it() -> None:
    s = spec(scaling={**LAG, "minReplicas": 0})
    first = decide_replicas(s, 4, 0, None, None, NOW, unstarted=True)
    assert first.replicas == 1
    assert "not started" in first.why
    # Asleep already (an operator from before), or after the window: woken, kept at one.
    assert decide_replicas(s, 4, 0, 0, None, NOW, unstarted=True).replicas == 1
    assert (
        decide_replicas(s, 4, 0, 1, NOW, NOW + timedelta(seconds=60), unstarted=True).replicas == 1
    )
    # Started: it sleeps as before; a lag asks for what it always did.
    assert decide_replicas(s, 4, 0, 1, NOW, NOW + timedelta(seconds=60)).replicas == 0
    assert decide_replicas(s, 4, 350, 0, None, NOW, unstarted=True).replicas == 4
    # Paused and the scale subresource still win.
    paused = spec(scaling={**LAG, "minReplicas": 0}, paused=True)
    assert decide_replicas(paused, 4, 0, 1, None, NOW, unstarted=True).replicas == 0
    scaled = spec(scaling={**LAG, "minReplicas": 0}, replicas=0)
    assert decide_replicas(scaled, 4, 0, 1, None, NOW, unstarted=True).replicas == 0


def test_lag_unknown_keeps_the_current_count() -> None:
    s = spec(scaling=LAG)
    assert decide_replicas(s, 8, None, 3, None, NOW).replicas == 3
    # min 1 by default: a new Connector starts with one replica.
    assert decide_replicas(s, 8, 0, None, None, NOW).replicas == 1


# Drain time: replicas from the throughput the pods measured (plain numbers).

DRAIN = {"mode": "lag", "targetDrainTime": "60s", "stabilizationWindow": "60s"}


def drained(backlog: int, rate: float, reporting: int, **fields: Any) -> DrainSignals:
    return DrainSignals(backlog, rate, reporting, **fields)


def test_drain_time_replicas_from_numbers() -> None:
    # 2 replicas flat out at 100/s each, 60,000 waiting: 2 + 60000 / (60 * 100) = 12.
    advice = drain_time_replicas(drained(60_000, 200, 2), 60)
    assert (advice.replicas, advice.per_replica) == (12, 100)
    # No backlog: keep pace with 250/s with headroom at the remembered 100/s: ceil(3.125).
    assert drain_time_replicas(drained(10, 250, 4, per_replica=100), 60).replicas == 4
    # A lag of a second or two is records in flight and commit intervals, not a backlog.
    assert drain_time_replicas(drained(300, 200, 2), 60).replicas is None
    assert drain_time_replicas(drained(0, 0, 1), 60).replicas is None  # nothing measured


def test_drain_time_grows_in_steps_that_let_the_group_settle() -> None:
    s = spec(scaling=DRAIN)
    first = decide_replicas(s, 32, 60_000, 2, None, NOW, drain=drained(60_000, 200, 2))
    assert first.replicas == 4  # wants 12: at most double per step
    assert first.throughput_per_replica == 100
    settling = decide_replicas(
        s,
        32,
        60_000,
        4,
        None,
        NOW + timedelta(seconds=10),
        drain=drained(60_000, 400, 4),
        last_scale=NOW,
    )
    assert settling.replicas == 4
    later = decide_replicas(
        s,
        32,
        60_000,
        4,
        None,
        NOW + timedelta(seconds=31),
        drain=drained(60_000, 400, 4),
        last_scale=NOW,
    )
    assert later.replicas == 8
    capped = decide_replicas(s, 6, 60_000, 4, None, NOW, drain=drained(60_000, 400, 4))
    assert capped.replicas == 6  # no more consumers than partitions


def test_a_throttling_or_failing_sink_or_a_blocked_partition_gets_no_more_pods() -> None:
    s = spec(scaling=DRAIN)
    held = drained(60_000, 200, 2, hold_back="the sink throttled 40 of 200 requests")
    decision = decide_replicas(s, 32, 60_000, 2, None, NOW, drain=held)
    assert decision.replicas == 2
    assert "not growing: the sink throttled" in decision.why


def test_drain_time_shrinks_after_the_cooldown_by_halves() -> None:
    s = spec(scaling=DRAIN)
    quiet = drained(0, 100, 8, per_replica=100)  # 125/s needed: 2 replicas
    first = decide_replicas(s, 32, 0, 8, None, NOW, drain=quiet)
    assert first.replicas == 8
    assert first.scale_down_since == NOW
    cooled = NOW + timedelta(seconds=61)
    step = decide_replicas(s, 32, 0, 8, first.scale_down_since, cooled, drain=quiet)
    assert step.replicas == 4  # halves, then another cooldown
    assert step.scale_down_since is None


def test_drain_time_falls_back_to_lag_threshold_until_measured() -> None:
    s = spec(scaling={**DRAIN, "lagThreshold": 100})
    assert decide_replicas(s, 8, 250, 1, None, NOW, drain=drained(250, 0, 1)).replicas == 3


def test_the_lag_threshold_fallback_does_not_grow_against_a_throttling_sink() -> None:
    s = spec(scaling={**DRAIN, "lagThreshold": 100})
    held = drained(250, 0, 1, hold_back="the sink throttled 9 of 9 requests")
    assert decide_replicas(s, 8, 250, 1, None, NOW, drain=held).replicas == 1


def test_lag_mode_caps_replicas_at_the_consumers_of_every_process() -> None:
    s = spec(scaling={**DRAIN, "processesPerReplica": 2})
    capped = decide_replicas(s, 6, 60_000, 2, None, NOW, drain=drained(60_000, 400, 2))
    assert capped.replicas == 3  # 3 pods of 2 processes: one consumer per partition
    partitions = decide_replicas(spec(scaling={"processesPerReplica": 2}), 6, None, None, None, NOW)
    assert partitions.why == "6 partitions, 2 consumers per replica (2 processes)"


def test_queue_mode_counts_every_process_as_members() -> None:
    queue = spec(
        source=QUEUE,
        delivery={"ordering": "unordered"},
        scaling={"maxReplicas": 3, "processesPerReplica": 2},
    )
    assert decide_replicas(queue, 1, None, None, None, NOW).replicas == 3
