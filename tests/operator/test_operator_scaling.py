"""How many replicas a Connector gets, by partitions and by lag."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sluice_operator.scaling import decide_replicas
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


def test_lag_unknown_keeps_the_current_count() -> None:
    s = spec(scaling=LAG)
    assert decide_replicas(s, 8, None, 3, None, NOW).replicas == 3
    # min 1 by default: a new Connector starts with one replica.
    assert decide_replicas(s, 8, 0, None, None, NOW).replicas == 1
