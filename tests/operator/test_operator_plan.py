"""What one reconcile decides, from plain data: which objects to apply, the status to write
(none when nothing changed), the Events a user sees, and whether to back off.

Each test observes a Connector as the API server, Kafka and the sink would show it, plans,
and where the plan applies objects, answers as the API server would (the objects back,
or a 422) and plans the report from that answer, as the reconcile does.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from sluice_operator.builders import CONFIG_HASH_ANNOTATION
from sluice_operator.conditions import ConditionType, Reason, find
from sluice_operator.kafka_facts import KafkaFacts, KafkaFactsError
from sluice_operator.kube import Kube, KubeError
from sluice_operator.plan import (
    Applied,
    Event,
    Observation,
    Plan,
    Rejection,
    SinkAddress,
    plan,
)
from sluice_operator.pod_health import FleetHealth
from sluice_operator.reconcile import apply_objects
from sluice_operator.settings import OperatorConfig
from sluice_operator.status import Check, ConnectorStatus
from sluice_operator.validation import InvalidSpec, ValidSpec, validate_connector
from sluice_runtime.health import RuntimeHealth

NOW = datetime(2025, 1, 1, tzinfo=UTC)
LATER = NOW + timedelta(seconds=10)
SETTINGS = OperatorConfig()
UID = "5d1c0a7e-0000-4000-8000-00000000000c"
SINK = "http://fn.ns.svc.cluster.local:80/"
RESOLVED = SinkAddress(SINK, Check("True", Reason.RESOLVED, "spec.sink.uri is set."))
NOTHING: dict[str, Any] = {"ConfigMap": None, "Deployment": None, "Service": None}


def connector(status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    """A Connector as read from the API server."""
    body: dict[str, Any] = {
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "Connector",
        "metadata": {"name": "c", "namespace": "ns", "uid": UID, "generation": 1},
        "spec": {
            "source": {"kafka": {"bootstrapServers": ["kafka:9092"], "topics": ["t"]}},
            "sink": {"uri": SINK},
            **spec,
        },
    }
    if status is not None:
        body["status"] = status
    return body


def partitions(count: int, **facts: Any) -> KafkaFacts:
    return KafkaFacts({"t": count}, lag=0, **facts)


def spec_check(body: dict[str, Any]) -> ValidSpec | InvalidSpec:
    try:
        return validate_connector(body, lambda namespace, name: None)
    except InvalidSpec as error:
        return error


def observe(
    body: dict[str, Any],
    owned: dict[str, Any] | None = None,
    kafka: KafkaFacts | KafkaFactsError | None = None,
    sink: SinkAddress = RESOLVED,
    now: datetime = NOW,
) -> Observation:
    """What the reconcile reads when no other controller's objects are in the way."""
    return Observation(
        connector=body,
        now=now,
        owned=owned or NOTHING,
        spec=spec_check(body),
        kafka=kafka or partitions(6),
        sink=sink,
    )


def served(obj: dict[str, Any], generation: int = 1, ready: int | None = None) -> dict[str, Any]:
    """An object as the API server returns it; a Deployment with ``ready`` replicas
    rolled out and available."""
    live = copy.deepcopy(obj)
    live["metadata"]["generation"] = generation
    if ready is not None:
        live["status"] = {
            "observedGeneration": generation,
            "replicas": ready,
            "updatedReplicas": ready,
            "readyReplicas": ready,
            "availableReplicas": ready,
        }
    return live


def accepted(observation: Observation, first: Plan) -> Applied:
    """The API server's answer when it accepts every object of ``first``."""
    live = {**observation.owned, **{obj["kind"]: served(obj) for obj in first.objects}}
    return Applied(live, tuple(obj["kind"] for obj in first.objects))


def answer(observation: Observation, first: Plan) -> Plan:
    """The report once the API server accepted every object of ``first``."""
    return plan(observation.answered(accepted(observation, first)), SETTINGS)


def running(body: dict[str, Any], count: int) -> dict[str, Any]:
    """The objects of a Connector that has run on ``count`` partitions for a while."""
    objects = plan(observe(body, kafka=partitions(count)), SETTINGS).objects
    return {
        obj["kind"]: served(obj, ready=count if obj["kind"] == "Deployment" else None)
        for obj in objects
    }


def condition(status: ConnectorStatus | None, type_: ConditionType) -> tuple[str, str, str]:
    assert status is not None
    found = find(status.conditions, type_)
    assert found is not None
    return found.status, found.reason, found.message


def kinds(objects: tuple[dict[str, Any], ...]) -> list[str]:
    return [obj["kind"] for obj in objects]


def test_first_create_applies_the_objects_then_reports_them_rolling_out() -> None:
    observation = observe(connector())
    first = plan(observation, SETTINGS)
    assert kinds(first.objects) == ["ConfigMap", "Deployment", "Service"]
    deployment = first.objects[1]
    assert deployment["spec"]["replicas"] == 6
    for obj in first.objects:
        [owner] = obj["metadata"]["ownerReferences"]
        assert (owner["uid"], owner["controller"]) == (UID, True)

    final = answer(observation, first)
    assert final.objects == ()
    assert condition(final.status, ConditionType.READY)[:2] == ("False", "RollingOut")
    assert condition(final.status, ConditionType.SOURCE_READY) == (
        "True",
        "TopicsFound",
        "Partitions: t (6).",
    )
    assert final.status is not None
    assert (final.status.replicas, final.status.partitions, final.status.lag) == (6, 6, 0)
    assert final.status.sink_uri == SINK
    template = deployment["spec"]["template"]["metadata"]
    assert final.status.config_hash == template["annotations"][CONFIG_HASH_ANNOTATION]
    assert final.events == ()
    assert not final.retry
    assert not final.gone


def test_nothing_changed_means_no_writes() -> None:
    body = connector()
    owned = running(body, 6)
    settled = plan(observe(body, owned), SETTINGS)
    assert settled.objects == ()
    assert condition(settled.status, ConditionType.READY) == (
        "True",
        "Available",
        f"Delivering to {SINK}.",
    )
    assert settled.events == (Event("Normal", "Ready", f"Delivering to {SINK}."),)

    assert settled.status is not None
    again = plan(observe(connector(status=settled.status.to_api()), owned, now=LATER), SETTINGS)
    assert again == Plan()


def test_more_partitions_rescale_the_deployment_alone_and_say_why() -> None:
    body = connector()
    observation = observe(body, running(body, 2), kafka=partitions(6))
    first = plan(observation, SETTINGS)
    assert kinds(first.objects) == ["Deployment"]
    assert first.objects[0]["spec"]["replicas"] == 6

    final = answer(observation, first)
    rescaled = Event(
        "Normal", "Rescaled", "Scaled from 2 to 6 replicas: 6 partitions, 1 consumer per replica."
    )
    assert final.action_events == (rescaled,)
    assert condition(final.status, ConditionType.READY)[:2] == ("False", "RollingOut")
    assert final.status is not None
    assert final.status.replicas == 6


def test_pausing_scales_to_zero() -> None:
    observation = observe(connector(paused=True), running(connector(), 2), kafka=partitions(2))
    final = answer(observation, plan(observation, SETTINGS))
    assert final.action_events == (
        Event("Normal", "Rescaled", "Scaled from 2 to 0 replicas: paused."),
    )
    assert condition(final.status, ConditionType.READY)[:2] == ("False", "Paused")


def test_objects_another_controller_owns_are_left_alone() -> None:
    theirs = served(running(connector(), 1)["Deployment"])
    theirs["metadata"]["ownerReferences"] = [{"kind": "ReplicaSet", "uid": "x", "controller": True}]
    # observe() asks no one else when objects are in the way.
    observation = Observation(
        connector=connector(), now=NOW, owned={**NOTHING, "Deployment": theirs}
    )
    planned = plan(observation, SETTINGS)
    assert planned.objects == ()
    message = (
        "Deployment ns/sluice-c exists and is not controlled by this Connector:"
        " rename or delete it."
    )
    assert condition(planned.status, ConditionType.READY) == ("False", "ObjectConflict", message)
    assert condition(planned.status, ConditionType.DEPLOYMENT_AVAILABLE)[:2] == (
        "False",
        "NotDeployed",
    )
    assert planned.events == (Event("Warning", "ObjectConflict", message),)
    assert not planned.retry


def test_an_invalid_spec_keeps_what_runs_and_warns_once() -> None:
    good = connector()
    owned = running(good, 6)
    was = plan(observe(good, owned), SETTINGS).status
    assert was is not None
    bad_filter = {"pattern": {"value": {"amount": [{"numeric": [">"]}]}}}
    bad = connector(status=was.to_api(), filter=bad_filter)
    bad["metadata"]["generation"] = 2

    planned = plan(observe(bad, owned), SETTINGS)
    assert planned.objects == ()
    ready = condition(planned.status, ConditionType.READY)
    assert ready[:2] == ("False", "InvalidSpec")
    assert ready[2].startswith("spec.filter.pattern.value.amount[0]: numeric needs")
    assert condition(planned.status, ConditionType.DEGRADED)[:2] == ("True", "InvalidSpec")
    assert planned.status is not None
    assert (planned.status.replicas, planned.status.config_hash) == (6, was.config_hash)
    assert planned.events == (Event("Warning", "InvalidSpec", ready[2]),)
    assert not planned.retry

    bad["status"] = planned.status.to_api()
    assert plan(observe(bad, owned, now=LATER), SETTINGS) == Plan()


def test_a_denied_spec_keeps_what_runs_and_warns_once() -> None:
    good = connector()
    owned = running(good, 6)
    was = plan(observe(good, owned), SETTINGS).status
    assert was is not None
    body = connector(status=was.to_api(), runtime={"image": "attacker/image:1"})
    body["metadata"]["generation"] = 2
    why = Check("False", Reason.NOT_PERMITTED, "spec.runtime.image: not an allowed image")
    observation = Observation(
        connector=body, now=NOW, owned=owned, spec=spec_check(body), denied=why
    )

    planned = plan(observation, SETTINGS)
    assert planned.objects == ()
    assert condition(planned.status, ConditionType.READY) == ("False", "NotPermitted", why.message)
    assert planned.status is not None
    assert planned.status.replicas == 6
    assert planned.events == (Event("Warning", "NotPermitted", why.message),)


def test_unreachable_kafka_still_deploys_and_backs_off() -> None:
    unreachable = KafkaFactsError(Reason.KAFKA_UNREACHABLE, "topic t: no answer in 5s")
    observation = observe(connector(), kafka=unreachable)
    first = plan(observation, SETTINGS)
    # Partitions unknown: the runtime still gets a minimal Deployment of its own to try with.
    assert first.objects[1]["spec"]["replicas"] == 1

    final = answer(observation, first)
    assert final.retry
    for type_ in (ConditionType.SOURCE_READY, ConditionType.READY, ConditionType.DEGRADED):
        assert condition(final.status, type_)[1] == "KafkaUnreachable"
    assert final.status is not None
    assert (final.status.partitions, final.status.lag) == (None, None)
    assert final.events == (Event("Warning", "KafkaUnreachable", "topic t: no answer in 5s"),)

    # Still unreachable, in other words: no second Warning.
    reworded = KafkaFactsError(Reason.KAFKA_UNREACHABLE, "topic t: connection refused")
    body = connector(status=final.status.to_api())
    live = dict(accepted(observation, first).live)
    still = plan(observe(body, live, kafka=reworded, now=LATER), SETTINGS)
    assert still.events == ()
    assert still.retry


def test_an_unresolved_sink_deploys_nothing_and_backs_off() -> None:
    body = connector(sink={"ref": {"apiVersion": "v1", "kind": "Service", "name": "fn"}})
    missing = Check("False", Reason.SINK_NOT_FOUND, "Service ns/fn not found.")
    planned = plan(observe(body, sink=SinkAddress(None, missing)), SETTINGS)
    assert planned.objects == ()
    assert planned.retry
    assert condition(planned.status, ConditionType.READY) == (
        "False",
        "SinkNotFound",
        "Service ns/fn not found.",
    )
    assert planned.status is not None
    assert (planned.status.replicas, planned.status.sink_uri) == (None, None)
    assert planned.events == (Event("Warning", "SinkNotFound", "Service ns/fn not found."),)


def test_an_object_the_api_server_rejects_is_an_invalid_spec() -> None:
    body = connector(runtime={"resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}})
    observation = observe(body)
    first = plan(observation, SETTINGS)
    refusal = 'Deployment.apps "sluice-c" is invalid: must be less than or equal to cpu limit'
    applied = Applied(
        {**NOTHING, "ConfigMap": served(first.objects[0])},
        ("ConfigMap",),
        Rejection("Deployment", refusal),
    )
    final = plan(observation.answered(applied), SETTINGS)
    message = f"spec.runtime: the API server rejected Deployment ns/sluice-c: {refusal}"
    assert final.objects == ()
    assert condition(final.status, ConditionType.READY) == ("False", "InvalidSpec", message)
    assert condition(final.status, ConditionType.DEGRADED)[:2] == ("True", "InvalidSpec")
    assert final.events == (Event("Warning", "InvalidSpec", message),)
    assert not final.retry


class ApiServer:
    """Answers applies as the API server would, refusing one kind as invalid."""

    def __init__(self, refuse: str, status: int = 422) -> None:
        self.refuse = refuse
        self.status = status
        self.applied: list[str] = []

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        if obj["kind"] == self.refuse:
            raise KubeError(self.status, "Invalid", f"{obj['kind']} is invalid")
        self.applied.append(obj["kind"])
        return served(obj)


def test_the_apply_stops_at_a_422_and_reports_it() -> None:
    objects = plan(observe(connector()), SETTINGS).objects
    server = ApiServer(refuse="Deployment")
    applied = apply_objects(cast(Kube, server), objects, NOTHING)
    assert server.applied == ["ConfigMap"]
    assert applied.kinds == ("ConfigMap",)
    assert applied.rejected == Rejection("Deployment", "Deployment is invalid")
    assert applied.live["ConfigMap"] is not None
    assert applied.live["Deployment"] is None


def test_the_apply_raises_what_is_not_a_spec_error() -> None:
    objects = plan(observe(connector()), SETTINGS).objects
    with pytest.raises(KubeError):
        apply_objects(cast(Kube, ApiServer(refuse="ConfigMap", status=500)), objects, NOTHING)


def test_a_created_dead_letter_topic_is_an_event() -> None:
    observation = observe(connector(), kafka=partitions(1, dead_letter_created="c-dlq"))
    final = answer(observation, plan(observation, SETTINGS))
    assert final.action_events == (Event("Normal", "CreatedDeadLetterTopic", "c-dlq"),)


def test_a_deleted_connector_is_forgotten() -> None:
    assert plan(Observation(connector=None, now=NOW), SETTINGS) == Plan(gone=True)


def test_a_blocked_partition_reported_by_a_pod_makes_degraded_once() -> None:
    body = connector()
    owned = running(body, 6)
    blocked = RuntimeHealth.model_validate(
        {
            "blocked": [
                {
                    "topic": "t",
                    "partition": 4,
                    "offset": 9,
                    "since": "2025-01-01T00:00:00Z",
                    "stage": "deliver",
                    "error": "HTTP 400",
                }
            ],
            "oldestUndeliveredSeconds": 73.4,
        }
    )
    seen = replace(observe(body, owned), health=FleetHealth((blocked,)))
    first = plan(seen, SETTINGS)
    status, reason, message = condition(first.status, ConditionType.DEGRADED)
    assert (status, reason) == ("True", "DeliveryBlocked")
    assert "t-4 is blocked at offset 9" in message
    assert condition(first.status, ConditionType.READY)[:2] == ("False", "DeliveryBlocked")
    assert [e.reason for e in first.transition_events] == ["DeliveryBlocked"]
    assert first.status is not None
    assert first.status.oldest_undelivered_seconds == 73

    again = replace(seen, connector=connector(status=first.status.to_api()), now=LATER)
    assert plan(again, SETTINGS) == Plan()  # the same report: no write, no second Event
