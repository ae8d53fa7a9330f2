"""A Connector's status: its model (which also generates the CRD's status schema) and the
pure function from what one reconcile observed to the status to write."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from sluice_operator.conditions import (
    ATTENTION_REASONS,
    Condition,
    ConditionStatus,
    ConditionType,
    Reason,
    find,
    make_condition,
)


class ConnectorStatus(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )

    observed_generation: int | None = Field(
        default=None, description="The generation of the spec the operator last acted on."
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Ready, SourceReady, SinkResolved, DeploymentAvailable and Degraded.",
    )
    partitions: int | None = Field(default=None, description="Partitions of all the topics.")
    replicas: int | None = Field(
        default=None, description="Replicas the operator asked the Deployment for."
    )
    ready_replicas: int | None = Field(default=None, description="Replicas ready to consume.")
    selector: str | None = Field(default=None, description="Label selector of the runtime pods.")
    sink_uri: str | None = Field(default=None, description="Where events are delivered.")
    lag: int | None = Field(
        default=None,
        description="Records not yet committed by the consumer group; in queue mode, records"
        " the share group has not yet finished (records deleted by retention are not counted).",
    )
    lag_by_topic: dict[str, int] | None = Field(default=None, description="The lag per topic.")
    delivered_per_second: float | None = Field(
        default=None,
        description="Events the function accepted per second over the pods' last minute"
        " (two significant digits).",
    )
    dead_lettered: int | None = Field(
        default=None, description="Records dead-lettered in the pods' last minute."
    )
    oldest_undelivered_seconds: int | None = Field(
        default=None,
        description="Age (from its Kafka timestamp) of the oldest record the pods hold and"
        " have not yet delivered, dead-lettered or filtered (two significant digits).",
    )
    throughput_per_replica: float | None = Field(
        default=None,
        description="Drain-time scaling: events per second one replica delivered while it"
        " had a backlog (the last such measurement).",
    )
    last_scale_time: str | None = Field(
        default=None, description="When the operator last changed the replicas."
    )
    config_hash: str | None = Field(
        default=None, description="Hash of the rendered runtime configuration."
    )
    scale_down_since: str | None = Field(
        default=None,
        description="Lag scaling: since when fewer replicas would do (stabilization window).",
    )

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> ConnectorStatus:
        """The status of a Connector as read from the API; anything unreadable is dropped
        (the next write replaces it)."""
        raw = body.get("status")
        if not isinstance(raw, dict):
            return cls()
        try:
            return cls.model_validate(raw)
        except ValueError:
            return cls()

    def to_api(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


@dataclass(frozen=True)
class Check:
    """The outcome of one check, as it becomes a condition."""

    status: ConditionStatus
    reason: Reason
    message: str

    @property
    def ok(self) -> bool:
        return self.status == "True"


@dataclass(frozen=True)
class Verdict:
    """What the data plane's health means for the conditions."""

    problem: Check | None = None
    """Degraded's reason and message; None when nothing needs a person."""
    stops_delivery: bool = False
    """Records wait and do not move: Ready is False for the problem too."""


@dataclass(frozen=True)
class Observed:
    """What one reconcile found out; everything build_status needs."""

    generation: int | None
    blocked: Check | None = None
    """Why the operator did not act (InvalidSpec, ObjectConflict): Ready is False for it."""
    source: Check | None = None  # None: not checked this time (keep the previous condition)
    sink: Check | None = None
    delivery: Verdict = Verdict()
    """What the pods report about delivery (pod_health.assess)."""
    deployment: dict[str, Any] | None = None  # the live Deployment after any apply
    paused: bool = False
    replicas: int | None = None
    partitions: int | None = None
    lag: int | None = None
    lag_by_topic: dict[str, int] | None = None
    delivered_per_second: float | None = None
    dead_lettered: int | None = None
    oldest_undelivered_seconds: int | None = None
    throughput_per_replica: float | None = None
    last_scale_time: str | None = None
    selector: str | None = None
    sink_uri: str | None = None
    config_hash: str | None = None
    scale_down_since: str | None = None


def check_deployment(deployment: dict[str, Any] | None) -> tuple[Check, int | None]:
    """DeploymentAvailable from the Deployment's own status, and its ready replicas."""
    if deployment is None:
        return Check("False", Reason.NOT_DEPLOYED, "The runtime Deployment does not exist."), None
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    name = (deployment.get("metadata") or {}).get("name", "?")
    wanted = int(spec.get("replicas", 1))
    ready = int(status.get("readyReplicas", 0))
    available = int(status.get("availableReplicas", 0))
    updated = int(status.get("updatedReplicas", 0))
    generation = (deployment.get("metadata") or {}).get("generation", 0)
    if status.get("observedGeneration", 0) < generation:
        return Check("False", Reason.ROLLING_OUT, f"Deployment {name} is being updated."), ready
    progressing = next(
        (c for c in status.get("conditions") or [] if c.get("type") == "Progressing"), None
    )
    if progressing is not None and progressing.get("reason") == "ProgressDeadlineExceeded":
        message = progressing.get("message") or f"Deployment {name} made no progress."
        return Check("False", Reason.PROGRESS_DEADLINE_EXCEEDED, message), ready
    if wanted == 0:
        return Check("True", Reason.SCALED_TO_ZERO, f"Deployment {name} has no replicas."), 0
    if updated < wanted:
        return (
            Check("False", Reason.ROLLING_OUT, f"{updated} of {wanted} replicas are updated."),
            ready,
        )
    if available < wanted:
        return (
            Check(
                "False",
                Reason.REPLICAS_UNAVAILABLE,
                f"{available} of {wanted} replicas are available.",
            ),
            ready,
        )
    return (
        Check(
            "True", Reason.REPLICAS_AVAILABLE, f"{available} of {wanted} replicas are available."
        ),
        ready,
    )


def build_status(previous: ConnectorStatus, observed: Observed, now: datetime) -> ConnectorStatus:
    """The status to write; equal to ``previous`` when nothing changed, so that an
    unchanged Connector causes no write."""
    old = previous.conditions
    generation = observed.generation

    def condition(type_: ConditionType, check: Check) -> Condition:
        return make_condition(
            type_,
            check.status,
            check.reason,
            check.message,
            generation=generation,
            previous=old,
            now=now,
        )

    def carried(type_: ConditionType) -> Check:
        before = find(old, type_)
        if before is None:
            return Check("Unknown", Reason.UNKNOWN, "Not checked yet.")
        return Check(before.status, Reason(before.reason), before.message)

    source = observed.source or carried(ConditionType.SOURCE_READY)
    sink = observed.sink or carried(ConditionType.SINK_RESOLVED)
    deployment, ready_replicas = check_deployment(observed.deployment)

    ready: Check
    if observed.blocked is not None:
        ready = observed.blocked
    elif not sink.ok:
        ready = Check("False", sink.reason, sink.message)
    elif not source.ok:
        ready = Check("False", source.reason, source.message)
    elif observed.paused:
        ready = Check("False", Reason.PAUSED, "Paused by spec.paused: no records are consumed.")
    elif not deployment.ok:
        ready = Check("False", deployment.reason, deployment.message)
    elif deployment.reason == Reason.SCALED_TO_ZERO:
        ready = Check("True", Reason.SCALED_TO_ZERO, "No lag: scaled to zero until records arrive.")
    elif observed.delivery.problem is not None and observed.delivery.stops_delivery:
        problem = observed.delivery.problem
        ready = Check("False", problem.reason, problem.message)
    else:
        ready = Check("True", Reason.AVAILABLE, f"Delivering to {observed.sink_uri}.")

    attention = next(
        (
            check
            for check in (ready, sink, source, deployment)
            if check.status != "True" and check.reason in ATTENTION_REASONS
        ),
        None,
    )
    if attention is None and deployment.ok and observed.delivery.problem is not None:
        attention = observed.delivery.problem  # the pods' report, while they run
    degraded = (
        Check("True", attention.reason, attention.message)
        if attention is not None
        else Check("False", Reason.AS_EXPECTED, "Nothing needs attention.")
    )

    conditions = [
        condition(ConditionType.READY, ready),
        condition(ConditionType.SOURCE_READY, source),
        condition(ConditionType.SINK_RESOLVED, sink),
        condition(ConditionType.DEPLOYMENT_AVAILABLE, deployment),
        condition(ConditionType.DEGRADED, degraded),
    ]
    return ConnectorStatus(
        observed_generation=generation,
        conditions=conditions,
        partitions=observed.partitions,
        replicas=observed.replicas,
        ready_replicas=ready_replicas,
        selector=observed.selector,
        sink_uri=observed.sink_uri,
        lag=observed.lag,
        lag_by_topic=observed.lag_by_topic,
        delivered_per_second=observed.delivered_per_second,
        dead_lettered=observed.dead_lettered,
        oldest_undelivered_seconds=observed.oldest_undelivered_seconds,
        throughput_per_replica=observed.throughput_per_replica,
        last_scale_time=observed.last_scale_time,
        config_hash=observed.config_hash,
        scale_down_since=observed.scale_down_since,
    )
