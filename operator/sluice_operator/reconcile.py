"""One idempotent reconcile of a Connector: observe → plan → apply.

- ``observe`` reads: the Connector, the objects of its name, the UDF's ConfigMap (through
  the spec check), the sink's address, Kafka's facts and what the runtime pods report
  (``pod_health``);
- ``plan`` (``plan.py``, pure) decides what to apply, the status and Events;
- ``apply`` server-side applies the plan's objects, plans again from the API server's
  answer, then writes the status and posts the Events (``report.py``).

The same function serves creation, updates, operator restarts and the periodic timer: it
never branches on why it runs. When nothing changed it writes nothing (not even a no-op
apply), which is what keeps a large number of idle Connectors cheap.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from sluice_operator.access import NotPermitted, check_access
from sluice_operator.builders import CONNECTOR_LABEL, runtime_name
from sluice_operator.kafka_facts import KafkaFacts, KafkaFactsError, KafkaFactsReader
from sluice_operator.kube import Kube, KubeError, resource_path
from sluice_operator.plan import (
    Applied,
    Manifest,
    Observation,
    Plan,
    Rejection,
    SinkAddress,
    foreign_kind,
    plan,
)
from sluice_operator.pod_health import PodHealthReader
from sluice_operator.report import report
from sluice_operator.settings import OperatorConfig
from sluice_operator.sink_address import resolve_sink
from sluice_operator.validation import InvalidSpec, validate_connector
from sluice_runtime.config import API_GROUP, API_VERSION

log = logging.getLogger("sluice.operator")

# What a Connector owns, by kind: (apiVersion, plural).
OWNED = {
    "ConfigMap": ("v1", "configmaps"),
    "Deployment": ("apps/v1", "deployments"),
    "Service": ("v1", "services"),
}


@dataclass(frozen=True)
class Outcome:
    """What one reconcile did, for the work queue's backoff, metrics and logs."""

    gone: bool = False
    retry: bool = False
    """Kafka or the sink could not be reached: worth retrying with backoff."""
    applied: tuple[str, ...] = ()
    status_written: bool = False


def connector_path(namespace: str, name: str) -> str:
    return resource_path(f"{API_GROUP}/{API_VERSION}", "connectors", namespace, name)


def reconcile_connector(
    kube: Kube,
    kafka: KafkaFactsReader,
    settings: OperatorConfig,
    namespace: str,
    name: str,
    now: datetime | None = None,
    pods: PodHealthReader | None = None,
) -> Outcome:
    observation = observe(kube, kafka, settings, namespace, name, now or datetime.now(UTC), pods)
    return apply(kube, settings, observation, plan(observation, settings))


def observe(
    kube: Kube,
    kafka: KafkaFactsReader,
    settings: OperatorConfig,
    namespace: str,
    name: str,
    now: datetime,
    pods: PodHealthReader | None = None,
) -> Observation:
    """Reads what the plan needs, and no more: with another controller's objects in the
    way the operator will not act, so it checks nothing further (asking Kafka may create
    the dead-letter topic); with an invalid spec, or one that names what its author may
    not use (access.py), there is no sink or topic to ask about."""
    body = kube.get(connector_path(namespace, name))
    if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
        return Observation(connector=None, now=now)
    object_name = runtime_name(name)
    owned = {
        kind: kube.get(resource_path(api, plural, namespace, object_name))
        for kind, (api, plural) in OWNED.items()
    }
    seen = Observation(connector=body, now=now, owned=owned)
    if foreign_kind(body, owned) is not None:
        return seen
    try:
        valid = validate_connector(
            body, lambda ns, n: kube.get(resource_path("v1", "configmaps", ns, n))
        )
    except InvalidSpec as error:
        return replace(seen, spec=error)
    try:
        identities = check_access(kube, valid.connector, settings)
    except NotPermitted as error:
        return replace(seen, spec=valid, denied=error.check)
    sink_uri, sink_check = resolve_sink(kube, valid.connector, settings)
    facts: KafkaFacts | KafkaFactsError
    try:
        facts = kafka.read(valid.connector, identities)
    except KafkaFactsError as error:
        facts = error
    # Only pods of a Deployment that exists can answer; a Connector scaled to zero has none.
    deployment = owned.get("Deployment")
    health = (
        pods.read(namespace, name)
        if pods is not None and deployment is not None and deployment["spec"].get("replicas")
        else None
    )
    return replace(
        seen, spec=valid, sink=SinkAddress(sink_uri, sink_check), kafka=facts, health=health
    )


def apply(kube: Kube, settings: OperatorConfig, observation: Observation, planned: Plan) -> Outcome:
    """Applies the plan's objects; the API server's answer (the objects as it returned
    them, or a rejection) makes the final plan; then writes its status and Events."""
    applied = apply_objects(kube, planned.objects, observation.owned)
    if planned.objects:
        planned = plan(observation.answered(applied), settings)
    written = report(kube, observation.connector, planned)
    return Outcome(
        gone=planned.gone, retry=planned.retry, applied=applied.kinds, status_written=written
    )


def apply_objects(
    kube: Kube,
    objects: tuple[Manifest, ...],
    owned: Mapping[str, Manifest | None],
) -> Applied:
    """Server-side applies ``objects`` in order. An object the API server rejects as
    invalid (422) is answered as a Rejection and stops the apply; any other error
    propagates (the work queue's caller retries)."""
    live = dict(owned)
    kinds: list[str] = []
    for obj in objects:
        kind = obj["kind"]
        try:
            live[kind] = kube.apply(obj)
        except KubeError as error:
            if error.status != 422:
                raise
            return Applied(live, tuple(kinds), Rejection(kind, error.message))
        kinds.append(kind)
        metadata = obj["metadata"]
        connector = f"{metadata['namespace']}/{metadata['labels'][CONNECTOR_LABEL]}"
        log.info(
            "Applied %s %s/%s",
            kind,
            metadata["namespace"],
            metadata["name"],
            extra={"connector": connector},
        )
    return Applied(live, tuple(kinds))
