"""The Connector's status: truthful conditions that only move when something changed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sluice_operator.conditions import ConditionType, Reason, find
from sluice_operator.status import Check, ConnectorStatus, Observed, build_status, check_deployment

T0 = datetime(2025, 1, 1, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)
OK_SOURCE = Check("True", Reason.TOPICS_FOUND, "Partitions: t (6).")
OK_SINK = Check("True", Reason.RESOLVED, "spec.sink.uri is set.")


def deployment(
    replicas: int = 6, available: int = 6, generation: int = 1, seen: int = 1
) -> dict[str, Any]:
    return {
        "metadata": {"name": "sluice-c", "generation": generation},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": seen,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": available,
            "availableReplicas": available,
        },
    }


def observed(**fields: Any) -> Observed:
    values: dict[str, Any] = {
        "generation": 3,
        "source": OK_SOURCE,
        "sink": OK_SINK,
        "deployment": deployment(),
        "replicas": 6,
        "partitions": 6,
        "lag": 0,
        "selector": "a=b",
        "sink_uri": "http://f/",
        "config_hash": "abc",
    }
    values.update(fields)
    return Observed(**values)


def condition(status: ConnectorStatus, type_: ConditionType) -> tuple[str, str]:
    found = find(status.conditions, type_)
    assert found is not None
    return found.status, found.reason


def test_ready_when_everything_is_available() -> None:
    status = build_status(ConnectorStatus(), observed(), T0)
    assert condition(status, ConditionType.READY) == ("True", "Available")
    assert condition(status, ConditionType.DEGRADED) == ("False", "AsExpected")
    assert condition(status, ConditionType.DEPLOYMENT_AVAILABLE) == ("True", "ReplicasAvailable")
    assert status.observed_generation == 3
    assert all(c.observed_generation == 3 for c in status.conditions)
    api = status.to_api()
    assert api["readyReplicas"] == 6
    assert api["partitions"] == 6
    assert api["sinkUri"] == "http://f/"
    assert [c["type"] for c in api["conditions"]] == [
        "Ready",
        "SourceReady",
        "SinkResolved",
        "DeploymentAvailable",
        "Degraded",
    ]


def test_unchanged_facts_give_an_identical_status() -> None:
    first = build_status(ConnectorStatus(), observed(), T0)
    again = build_status(first, observed(), T1)
    assert again == first


def test_transition_time_moves_only_with_the_status() -> None:
    first = build_status(ConnectorStatus(), observed(deployment=deployment(available=2)), T0)
    ready = find(first.conditions, ConditionType.READY)
    assert ready is not None
    assert ready.reason == "ReplicasUnavailable"
    # A new reason or message with the same status keeps the time.
    rolling = build_status(first, observed(deployment=deployment(generation=2)), T1)
    still = find(rolling.conditions, ConditionType.READY)
    assert still is not None
    assert still.reason == "RollingOut"
    assert still.last_transition_time == ready.last_transition_time
    became = build_status(rolling, observed(), T1)
    now_ready = find(became.conditions, ConditionType.READY)
    assert now_ready is not None
    assert now_ready.status == "True"
    assert now_ready.last_transition_time == "2025-01-01T00:05:00Z"


def test_reasons_in_order_of_what_to_fix_first() -> None:
    invalid = Check("False", Reason.INVALID_SPEC, "spec.filter.pattern: bad")
    status = build_status(ConnectorStatus(), observed(blocked=invalid), T0)
    assert condition(status, ConditionType.READY) == ("False", "InvalidSpec")
    assert condition(status, ConditionType.DEGRADED) == ("True", "InvalidSpec")

    lost = Check("False", Reason.KAFKA_UNREACHABLE, "no answer")
    status = build_status(ConnectorStatus(), observed(source=lost), T0)
    assert condition(status, ConditionType.READY) == ("False", "KafkaUnreachable")
    assert condition(status, ConditionType.SOURCE_READY) == ("False", "KafkaUnreachable")
    assert condition(status, ConditionType.DEGRADED) == ("True", "KafkaUnreachable")

    missing = Check("False", Reason.SINK_NOT_FOUND, "Service n/f not found.")
    status = build_status(ConnectorStatus(), observed(source=lost, sink=missing), T0)
    assert condition(status, ConditionType.READY) == ("False", "SinkNotFound")

    status = build_status(
        ConnectorStatus(), observed(paused=True, replicas=0, deployment=deployment(0, 0)), T0
    )
    assert condition(status, ConditionType.READY) == ("False", "Paused")
    assert condition(status, ConditionType.DEGRADED) == ("False", "AsExpected")


def test_a_blocked_reconcile_keeps_the_other_conditions() -> None:
    first = build_status(ConnectorStatus(), observed(), T0)
    invalid = Check("False", Reason.INVALID_SPEC, "spec.transform.jsonPath: bad")
    blocked = build_status(first, observed(blocked=invalid, source=None, sink=None), T1)
    assert condition(blocked, ConditionType.SOURCE_READY) == ("True", "TopicsFound")
    assert condition(blocked, ConditionType.SINK_RESOLVED) == ("True", "Resolved")


def test_deployment_checks() -> None:
    assert check_deployment(None)[0].reason == Reason.NOT_DEPLOYED
    assert check_deployment(deployment(generation=2, seen=1))[0].reason == Reason.ROLLING_OUT
    check, ready = check_deployment(deployment(available=4))
    assert (check.status, check.reason, ready) == ("False", Reason.REPLICAS_UNAVAILABLE, 4)
    assert check_deployment(deployment(0, 0))[0] == Check(
        "True", Reason.SCALED_TO_ZERO, "Deployment sluice-c has no replicas."
    )
    stuck = deployment(available=1)
    stuck["status"]["conditions"] = [
        {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
    ]
    assert check_deployment(stuck)[0].reason == Reason.PROGRESS_DEADLINE_EXCEEDED


def test_status_from_an_unreadable_body_starts_afresh() -> None:
    assert ConnectorStatus.from_body({"status": {"conditions": "nonsense"}}) == ConnectorStatus()
    assert ConnectorStatus.from_body({}) == ConnectorStatus()
