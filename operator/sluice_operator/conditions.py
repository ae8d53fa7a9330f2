"""Condition types and reasons of a Connector's status, in one place, and the rule that
keeps ``lastTransitionTime`` stable.

Conditions follow the Kubernetes API conventions (``metav1.Condition``): a type, a status
(``True``, ``False`` or ``Unknown``), a one-word CamelCase reason for machines, a sentence
for people, the generation they were computed from, and the time the status last flipped.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

ConditionStatus = Literal["True", "False", "Unknown"]


class ConditionType(StrEnum):
    READY = "Ready"
    """The data plane is deployed and its pods are available: records are flowing."""
    SOURCE_READY = "SourceReady"
    """The operator reached Kafka and found every topic (and the dead-letter topic)."""
    SINK_RESOLVED = "SinkResolved"
    """The sink has an address (``sink.uri``, or the ``sink.ref`` object's)."""
    DEPLOYMENT_AVAILABLE = "DeploymentAvailable"
    """The runtime Deployment has rolled out and all its replicas are available."""
    DEGRADED = "Degraded"
    """Something needs a person's attention (True); rollouts and pauses do not count."""


class Reason(StrEnum):
    # Ready
    AVAILABLE = "Available"
    SCALED_TO_ZERO = "ScaledToZero"
    PAUSED = "Paused"
    INVALID_SPEC = "InvalidSpec"
    OBJECT_CONFLICT = "ObjectConflict"
    NOT_PERMITTED = "NotPermitted"
    """The spec asks for something its author may not have the operator do: a Secret that
    does not opt in, an image outside the allow-list, a sink in another namespace."""
    # SourceReady
    TOPICS_FOUND = "TopicsFound"
    KAFKA_UNREACHABLE = "KafkaUnreachable"
    TOPIC_NOT_FOUND = "TopicNotFound"
    KAFKA_ACCESS_DENIED = "KafkaAccessDenied"
    KAFKA_ERROR = "KafkaError"
    DEAD_LETTER_TOPIC_FAILED = "DeadLetterTopicFailed"
    # SinkResolved
    RESOLVED = "Resolved"
    SINK_NOT_FOUND = "SinkNotFound"
    SINK_NOT_ADDRESSABLE = "SinkNotAddressable"
    SINK_KIND_UNSUPPORTED = "SinkKindUnsupported"
    # DeploymentAvailable
    REPLICAS_AVAILABLE = "ReplicasAvailable"
    NOT_DEPLOYED = "NotDeployed"
    ROLLING_OUT = "RollingOut"
    REPLICAS_UNAVAILABLE = "ReplicasUnavailable"
    PROGRESS_DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"
    # Degraded (and Ready when records wait and do not move): what the pods report
    AS_EXPECTED = "AsExpected"
    DELIVERY_BLOCKED = "DeliveryBlocked"
    """A partition waits at a record that keeps failing (errorTolerance none)."""
    SINK_FAILING = "SinkFailing"
    """Most requests to the function fail (5xx, timeouts, refused connections)."""
    DEAD_LETTER_UNAVAILABLE = "DeadLetterUnavailable"
    """Failed records cannot be written to the dead-letter topic; their partitions wait."""
    REBALANCING = "Rebalancing"
    """The consumer group keeps rebalancing."""
    # Any condition that cannot be evaluated yet.
    UNKNOWN = "Unknown"


# Reasons that mean "needs attention": they make Degraded True.
ATTENTION_REASONS = frozenset(
    {
        Reason.INVALID_SPEC,
        Reason.OBJECT_CONFLICT,
        Reason.NOT_PERMITTED,
        Reason.KAFKA_UNREACHABLE,
        Reason.TOPIC_NOT_FOUND,
        Reason.KAFKA_ACCESS_DENIED,
        Reason.KAFKA_ERROR,
        Reason.DEAD_LETTER_TOPIC_FAILED,
        Reason.SINK_NOT_FOUND,
        Reason.SINK_NOT_ADDRESSABLE,
        Reason.SINK_KIND_UNSUPPORTED,
        Reason.PROGRESS_DEADLINE_EXCEEDED,
        Reason.DELIVERY_BLOCKED,
        Reason.SINK_FAILING,
        Reason.DEAD_LETTER_UNAVAILABLE,
        Reason.REBALANCING,
    }
)


class Condition(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )

    type: str = Field(description="Ready, SourceReady, SinkResolved, DeploymentAvailable, …")
    status: ConditionStatus
    reason: str = Field(description="One CamelCase word for machines.")
    message: str = Field(description="A sentence for people.")
    observed_generation: int | None = Field(
        default=None, description="The generation of the spec this was computed from."
    )
    last_transition_time: str = Field(
        description="When the status last changed.", json_schema_extra={"format": "date-time"}
    )


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC to the second, as ``metav1.Time`` serialises."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def make_condition(
    type_: ConditionType,
    status: ConditionStatus,
    reason: Reason,
    message: str,
    *,
    generation: int | None,
    previous: Iterable[Condition],
    now: datetime,
) -> Condition:
    """A condition whose ``lastTransitionTime`` moves only when its status changes, so that
    a new message or reason alone never looks like a transition."""
    before = next((c for c in previous if c.type == type_), None)
    since = (
        before.last_transition_time
        if before is not None and before.status == status
        else format_time(now)
    )
    return Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message,
        observed_generation=generation,
        last_transition_time=since,
    )


def find(conditions: Iterable[Condition], type_: ConditionType) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)
