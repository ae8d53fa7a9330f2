"""What one reconcile should do about a Connector, decided from what it read.

``plan`` is a pure function from an :class:`Observation` (plain data: the Connector, the
objects of its name, the spec check, Kafka's answer, the sink's address, the time) to a
:class:`Plan` (the objects to apply, the status to write, the Events to post, whether to
retry). It does no I/O and reads no clock, so every decision of the reconcile is
unit-tested from dict fixtures, and the I/O around it (``reconcile.py``) stays thin.

The status must describe the objects as the API server returned them (a Deployment whose
spec was just applied is rolling out), and an object the API server rejects (422) makes
the spec invalid. So once a plan's objects are applied, the reconcile plans again from the
observation *answered* with what the API server said (:class:`Applied`); that second plan
applies nothing and reports everything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, Literal

from sluice_operator.builders import (
    build_configmap,
    build_deployment,
    build_service,
    owner_reference,
    render_runtime_config,
    runtime_name,
    selector_string,
)
from sluice_operator.conditions import ConditionType, Reason, find, format_time
from sluice_operator.kafka_facts import KafkaFacts, KafkaFactsError
from sluice_operator.pod_health import FleetHealth, assess, significant
from sluice_operator.scaling import DrainSignals, decide_replicas
from sluice_operator.settings import OperatorConfig
from sluice_operator.status import Check, ConnectorStatus, Observed, Verdict, build_status
from sluice_operator.validation import InvalidSpec, ValidSpec

Manifest = dict[str, Any]
"""A Kubernetes object as plain data, as read from or sent to the API server."""


@dataclass(frozen=True)
class SinkAddress:
    """Where the sink resolved to (None when it did not), and the SinkResolved check."""

    uri: str | None
    check: Check


@dataclass(frozen=True)
class Rejection:
    """The API server refused an object as invalid (422): what the CRD schema lets through
    but the object's own validation does not, such as requests above limits."""

    kind: str
    message: str


@dataclass(frozen=True)
class Applied:
    """What the API server answered to a plan's objects."""

    live: Mapping[str, Manifest | None]
    """The owned objects by kind after the apply, as the API server returned them."""
    kinds: tuple[str, ...] = ()
    """The kinds applied, in order."""
    rejected: Rejection | None = None
    """The object refused; the apply stopped there."""


@dataclass(frozen=True)
class Observation:
    """Everything one reconcile read, as plain data."""

    connector: Manifest | None
    """The Connector; None when it is gone or being deleted."""
    now: datetime
    owned: Mapping[str, Manifest | None] = field(default_factory=dict)
    """The live ConfigMap, Deployment and Service of the Connector's name, by kind."""
    spec: ValidSpec | InvalidSpec | None = None
    """The spec check; None when not made (objects in the way are not ours to act on)."""
    denied: Check | None = None
    """Why a valid spec may not be acted on (a Secret or image its author may not use)."""
    kafka: KafkaFacts | KafkaFactsError | None = None
    """Kafka's facts about the topics, or why it could not tell; None when not asked."""
    sink: SinkAddress | None = None
    """None when not resolved."""
    health: FleetHealth | None = None
    """What the runtime pods reported; None when none could be read."""
    applied: Applied | None = None
    """What the API server answered to this reconcile's objects; None before the apply."""

    def answered(self, applied: Applied) -> Observation:
        return replace(self, applied=applied)

    @cached_property
    def previous(self) -> ConnectorStatus:
        return ConnectorStatus.from_body(self.connector or {})

    @property
    def deployment(self) -> Manifest | None:
        """The runtime Deployment as it is now: after the apply when there was one."""
        live = self.applied.live if self.applied is not None else self.owned
        return live.get("Deployment")


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event about the Connector, what ``kubectl describe`` shows."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class Plan:
    objects: tuple[Manifest, ...] = ()
    """To server-side apply, in this order; only those that differ from the live ones."""
    status: ConnectorStatus | None = None
    """To write; None when the Connector already says it (an idle Connector costs no write)."""
    action_events: tuple[Event, ...] = ()
    """What this reconcile did (rescaled, created the dead-letter topic): posted before the
    status, so whoever sees the status also finds them."""
    transition_events: tuple[Event, ...] = ()
    """What the new status says that the previous did not: posted once the status is
    written, so that a failed write posts them on the next attempt rather than twice."""
    retry: bool = False
    """Kafka or the sink could not be reached: re-check with backoff."""
    gone: bool = False
    """The Connector no longer exists: forget it (its objects are garbage-collected)."""

    @property
    def events(self) -> tuple[Event, ...]:
        return self.action_events + self.transition_events


def plan(observation: Observation, settings: OperatorConfig) -> Plan:
    """What to do about the observed Connector. Applies nothing once ``observation.applied``
    holds the API server's answer: that plan only reports."""
    body = observation.connector
    if body is None:
        return Plan(gone=True)
    held = _held_back(observation, body)
    if held is not None:
        return _report(observation, body, held)
    return _act(observation, body, settings)


def _held_back(observation: Observation, body: Manifest) -> Observed | None:
    """Why the operator must not act, reported with the facts it had before; None when it
    may act."""
    metadata = body["metadata"]
    where = f"{metadata['namespace']}/{runtime_name(metadata['name'])}"
    foreign = foreign_kind(body, observation.owned)
    rejected = observation.applied.rejected if observation.applied is not None else None
    if foreign is not None:
        # Objects of that name that something else controls are never taken over.
        why = Check(
            "False",
            Reason.OBJECT_CONFLICT,
            f"{foreign} {where} exists and is not controlled by this Connector:"
            " rename or delete it.",
        )
        return _carry_over(observation, body, why, deployment=None)
    if isinstance(observation.spec, InvalidSpec):
        why = Check("False", Reason.INVALID_SPEC, str(observation.spec))
    elif observation.denied is not None:
        why = observation.denied
    elif rejected is not None:
        # A spec error, not a crash loop: the user fixes the spec.
        why = Check(
            "False",
            Reason.INVALID_SPEC,
            f"spec.runtime: the API server rejected {rejected.kind} {where}: {rejected.message}",
        )
    else:
        return None
    return _carry_over(observation, body, why, deployment=observation.deployment)


def _carry_over(
    observation: Observation, body: Manifest, blocked: Check, deployment: Manifest | None
) -> Observed:
    """What to report when the operator does not act: the facts it had before."""
    previous = observation.previous
    return Observed(
        generation=body["metadata"].get("generation"),
        blocked=blocked,
        deployment=deployment,
        replicas=previous.replicas,
        partitions=previous.partitions,
        lag=previous.lag,
        selector=previous.selector,
        sink_uri=previous.sink_uri,
        config_hash=previous.config_hash,
        scale_down_since=previous.scale_down_since,
        lag_by_topic=previous.lag_by_topic,
        delivered_per_second=previous.delivered_per_second,
        dead_lettered=previous.dead_lettered,
        oldest_undelivered_seconds=previous.oldest_undelivered_seconds,
        throughput_per_replica=previous.throughput_per_replica,
        last_scale_time=previous.last_scale_time,
    )


def _act(observation: Observation, body: Manifest, settings: OperatorConfig) -> Plan:
    """The objects a valid spec asks for, the replicas Kafka's facts call for, and the
    status and Events that follow."""
    valid, kafka, sink = observation.spec, observation.kafka, observation.sink
    assert isinstance(valid, ValidSpec), "observe() checks the spec before the operator acts"
    assert kafka is not None, "observe() asks Kafka about a valid spec"
    assert sink is not None, "observe() resolves the sink of a valid spec"
    connector = valid.connector
    spec = connector.spec
    previous = observation.previous
    facts = kafka if isinstance(kafka, KafkaFacts) else None
    before = observation.owned.get("Deployment")
    current = int(before["spec"].get("replicas", 1)) if before is not None else None
    health = observation.health
    lag = facts.lag if facts is not None else None
    decision = decide_replicas(
        spec,
        facts.total_partitions if facts is not None else None,
        lag,
        current,
        _parse_time(previous.scale_down_since),
        observation.now,
        drain=drain_signals(health, lag, previous.throughput_per_replica),
        last_scale=_parse_time(previous.last_scale_time),
        unstarted=facts.unstarted if facts is not None else False,
    )
    last_scale_time = previous.last_scale_time

    objects: tuple[Manifest, ...] = ()
    actions: list[Event] = []
    config_hash, replicas = previous.config_hash, current
    if sink.uri is not None:
        owner = owner_reference(body)
        config = render_runtime_config(connector, sink.uri, decision.replicas, valid.udf_source)
        desired = (
            build_configmap(connector, config, owner),
            build_deployment(connector, config, decision.replicas, settings, owner),
            build_service(connector, owner),
        )
        objects = tuple(o for o in desired if not is_subset(o, observation.owned.get(o["kind"])))
        config_hash, replicas = config.hash, decision.replicas
        if current is not None and current != decision.replicas:
            message = f"Scaled from {current} to {decision.replicas} replicas: {decision.why}."
            actions.append(Event("Normal", "Rescaled", message))
            last_scale_time = format_time(observation.now)
    elif before is None:
        replicas = None  # nothing deployed yet: there is no address to deliver to
    if facts is not None and facts.dead_letter_created is not None:
        actions.append(Event("Normal", "CreatedDeadLetterTopic", facts.dead_letter_created))

    source = _source_check(kafka)
    observed = Observed(
        generation=body["metadata"].get("generation"),
        source=source,
        sink=sink.check,
        deployment=observation.deployment,
        paused=spec.paused,
        replicas=replicas,
        partitions=facts.total_partitions if facts is not None else previous.partitions,
        lag=lag,
        lag_by_topic=facts.lag_by_topic if facts is not None else None,
        delivery=assess(health, lag) if not spec.paused else Verdict(),
        delivered_per_second=significant(health.delivered_per_second) if health else None,
        dead_lettered=health.dead_lettered if health else None,
        oldest_undelivered_seconds=(
            int(significant(health.oldest_undelivered_seconds))
            if health and health.oldest_undelivered_seconds is not None
            else None
        ),
        throughput_per_replica=(
            significant(decision.throughput_per_replica)
            if decision.throughput_per_replica is not None
            # Kept while no pod answers (a restart, a moment of DNS): it was measured.
            else previous.throughput_per_replica
            if spec.scaling.mode == "lag"
            else None
        ),
        last_scale_time=last_scale_time,
        selector=selector_string(connector.metadata.name),
        sink_uri=sink.uri or previous.sink_uri,
        config_hash=config_hash,
        scale_down_since=(
            format_time(decision.scale_down_since)
            if decision.scale_down_since is not None
            else None
        ),
    )
    return replace(
        _report(observation, body, observed),
        objects=objects if observation.applied is None else (),
        action_events=tuple(actions),
        retry=not (source.ok and sink.check.ok),
    )


def _report(observation: Observation, body: Manifest, observed: Observed) -> Plan:
    previous = observation.previous
    status = build_status(previous, observed, observation.now)
    changed = status.to_api() != (body.get("status") or {})
    return Plan(
        status=status if changed else None,
        transition_events=transition_events(previous, status),
    )


def drain_signals(
    health: FleetHealth | None, lag: int | None, per_replica: float | None
) -> DrainSignals | None:
    """What the drain-time rule needs, from the pods' reports and the group's lag."""
    if health is None or not health.pods or lag is None:
        return None
    hold_back = None
    if health.blocked:
        hold_back = "a partition is blocked"
    elif health.throttled:
        hold_back = f"the sink throttled {health.sink.throttled} of {health.sink.requests} requests"
    elif health.sink_failing:
        hold_back = f"the sink failed {health.sink.failed} of {health.sink.requests} requests"
    return DrainSignals(
        backlog=lag,
        delivered_per_second=health.delivered_per_second,
        reporting_replicas=len(health.pods),
        per_replica=per_replica,
        hold_back=hold_back,
    )


def _source_check(kafka: KafkaFacts | KafkaFactsError) -> Check:
    if isinstance(kafka, KafkaFactsError):
        return Check("False", kafka.reason, kafka.message)
    if kafka.dead_letter_error is not None:
        return Check("False", Reason.DEAD_LETTER_TOPIC_FAILED, kafka.dead_letter_error)
    topics = ", ".join(f"{topic} ({count})" for topic, count in kafka.partitions.items())
    return Check("True", Reason.TOPICS_FOUND, f"Partitions: {topics}.")


def _parse_time(text: str | None) -> datetime | None:
    if text is None:
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def foreign_kind(body: Manifest, owned: Mapping[str, Manifest | None]) -> str | None:
    """The first kind whose object of the Connector's name another controller owns."""
    uid = body["metadata"]["uid"]
    for kind, obj in owned.items():
        if obj is not None and _controller_uid(obj) != uid:
            return kind
    return None


def _controller_uid(obj: Manifest) -> str | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("uid"))
    return None


def is_subset(desired: Any, live: Any) -> bool:
    """Whether ``live`` already holds everything in ``desired`` (the API server adds
    defaults and others' fields, which do not matter)."""
    if isinstance(desired, dict):
        return isinstance(live, dict) and all(
            key in live and is_subset(value, live[key]) for key, value in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(live, list)
            and len(desired) == len(live)
            and all(is_subset(d, v) for d, v in zip(desired, live, strict=True))
        )
    return bool(desired == live)


# Conditions whose turning False is worth an Event, and whether a new message alone is
# (a different spec error is news; a Kafka error worded differently is not).
_WARN_ON = {
    ConditionType.SOURCE_READY: False,
    ConditionType.SINK_RESOLVED: False,
}
_BLOCKED = (Reason.INVALID_SPEC, Reason.OBJECT_CONFLICT, Reason.NOT_PERMITTED)
# What the pods report; once each time Degraded takes one of these reasons.
_DATA_PLANE = (
    Reason.DELIVERY_BLOCKED,
    Reason.SINK_FAILING,
    Reason.DEAD_LETTER_UNAVAILABLE,
    Reason.REBALANCING,
)


def transition_events(previous: ConnectorStatus, status: ConnectorStatus) -> tuple[Event, ...]:
    """Events for what turned bad (a Warning each, once) and for becoming Ready."""
    events: list[Event] = []
    for type_, on_message in _WARN_ON.items():
        new = find(status.conditions, type_)
        old = find(previous.conditions, type_)
        if new is None or new.status != "False":
            continue
        if (
            old is None
            or old.status != new.status
            or old.reason != new.reason
            or (on_message and old.message != new.message)
        ):
            events.append(Event("Warning", new.reason, new.message))
    new_degraded = find(status.conditions, ConditionType.DEGRADED)
    old_degraded = find(previous.conditions, ConditionType.DEGRADED)
    if (
        new_degraded is not None
        and new_degraded.status == "True"
        and new_degraded.reason in _DATA_PLANE
        and (
            old_degraded is None
            or (old_degraded.status, old_degraded.reason) != ("True", new_degraded.reason)
        )
    ):
        events.append(Event("Warning", new_degraded.reason, new_degraded.message))
    new_ready = find(status.conditions, ConditionType.READY)
    old_ready = find(previous.conditions, ConditionType.READY)
    if new_ready is None:
        return tuple(events)
    if new_ready.reason in _BLOCKED and (
        old_ready is None
        or old_ready.reason != new_ready.reason
        or old_ready.message != new_ready.message
    ):
        events.append(Event("Warning", new_ready.reason, new_ready.message))
    if new_ready.status == "True" and (old_ready is None or old_ready.status != "True"):
        events.append(Event("Normal", "Ready", new_ready.message))
    return tuple(events)
