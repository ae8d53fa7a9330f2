"""One idempotent reconcile of a Connector: read it and what it owns, ask Kafka and the
sink, apply what differs, write the status when it changed, and post Events for what a
user should notice.

The same function serves creation, updates, operator restarts and the periodic timer: it
never branches on why it runs. When nothing changed it writes nothing (not even a no-op
apply), which is what keeps a large number of idle Connectors cheap.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sluice_operator.builders import (
    build_configmap,
    build_deployment,
    build_service,
    owner_reference,
    render_runtime_config,
    runtime_name,
    selector_string,
)
from sluice_operator.conditions import ConditionType, Reason, find
from sluice_operator.kafka_facts import KafkaFacts, KafkaFactsError, KafkaFactsReader
from sluice_operator.kube import Kube, KubeError, load_configuration, resource_path
from sluice_operator.metrics import OperatorMetrics
from sluice_operator.periodic import PeriodicRechecks
from sluice_operator.scaling import ScalingDecision, decide_replicas
from sluice_operator.settings import OperatorConfig
from sluice_operator.sinks import resolve_sink
from sluice_operator.status import Check, ConnectorStatus, Observed, build_status
from sluice_operator.validation import InvalidSpec, validate_connector
from sluice_runtime.config import API_GROUP, API_VERSION, KIND

log = logging.getLogger("sluice.operator")

CONNECTOR_API_VERSION = f"{API_GROUP}/{API_VERSION}"
# What a Connector owns, by kind: (apiVersion, plural).
OWNED = {
    "ConfigMap": ("v1", "configmaps"),
    "Deployment": ("apps/v1", "deployments"),
    "Service": ("v1", "services"),
}


class Backoff:
    """When a failing Connector is next retried by the timer: after one interval, then
    doubling up to a cap, and back to every interval once it succeeds."""

    def __init__(self, base: float, cap: float) -> None:
        self.base = base
        self.cap = cap
        self._failures: dict[str, int] = {}
        self._next: dict[str, float] = {}
        self._lock = threading.Lock()

    def due(self, key: str, now: float) -> bool:
        with self._lock:
            return now >= self._next.get(key, 0.0)

    def record(self, key: str, ok: bool, now: float) -> float | None:
        """Returns the wait before the next attempt after a failure."""
        with self._lock:
            if ok:
                self._failures.pop(key, None)
                self._next.pop(key, None)
                return None
            failures = self._failures.get(key, 0) + 1
            self._failures[key] = failures
            delay: float = min(self.base * 2.0 ** (failures - 1), self.cap)
            # Half an interval early, so the timer tick that lands just before is not lost.
            self._next[key] = now + delay - self.base / 2
            return delay

    def forget(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)
            self._next.pop(key, None)


@dataclass
class OperatorContext:
    """Everything a reconcile needs; kopf hands it to every handler as ``memo``."""

    config: OperatorConfig
    kube: Kube
    kafka: KafkaFactsReader
    metrics: OperatorMetrics
    backoff: Backoff
    _locks: dict[str, threading.Lock] = field(default_factory=dict)
    _locks_lock: threading.Lock = field(default_factory=threading.Lock)
    _deployments: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    _pools: dict[str, ThreadPoolExecutor] = field(default_factory=dict)
    periodic: PeriodicRechecks = field(init=False)

    def __post_init__(self) -> None:
        self.periodic = PeriodicRechecks(self.config.timer_interval, self._recheck)

    async def _recheck(self, namespace: str, name: str) -> None:
        await self.reconcile(namespace, name, "timer")

    @classmethod
    def create(cls, config: OperatorConfig, kubeconfig: str | None = None) -> OperatorContext:
        metrics = OperatorMetrics()
        kube = Kube(
            load_configuration(kubeconfig),
            pool_size=config.workers + 4,
            on_write=metrics.count_write,
        )
        return cls(
            config=config,
            kube=kube,
            kafka=KafkaFactsReader(config.kafka_timeout),
            metrics=metrics,
            backoff=Backoff(config.timer_interval, config.backoff_max),
        )

    @contextmanager
    def serialized(self, key: str) -> Iterator[None]:
        """One reconcile at a time per Connector (the timer and change handlers overlap)."""
        with self._locks_lock:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            yield

    def forget(self, key: str) -> None:
        with self._locks_lock:
            self._locks.pop(key, None)
            self._deployments.pop(key, None)
        self.backoff.forget(key)

    def deployment_changed(
        self, namespace: str, connector: str, deployment: Mapping[str, Any], deleted: bool
    ) -> bool:
        """Whether a watch event on a runtime Deployment changes what the Connector's
        status says about it (most events are the controllers' bookkeeping)."""
        key = _ref(namespace, connector)
        spec = deployment.get("spec") or {}
        status = deployment.get("status") or {}
        seen = (
            deleted,
            (deployment.get("metadata") or {}).get("generation"),
            spec.get("replicas"),
            status.get("observedGeneration"),
            status.get("updatedReplicas"),
            status.get("readyReplicas"),
            status.get("availableReplicas"),
        )
        with self._locks_lock:
            changed = self._deployments.get(key) != seen
            self._deployments[key] = seen
        return changed

    async def reconcile(self, namespace: str, name: str, trigger: str) -> None:
        """Runs one reconcile on a worker thread. Changes a user made get their own pool,
        so periodic re-checks of many Connectors never delay the reaction to an edit."""
        kind = "change" if trigger == "change" else "background"
        with self._locks_lock:
            pool = self._pools.get(kind)
            if pool is None:
                workers = (
                    self.config.workers if kind == "change" else max(2, self.config.workers // 4)
                )
                pool = ThreadPoolExecutor(workers, thread_name_prefix=f"reconcile-{kind}")
                self._pools[kind] = pool
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(pool, run_reconcile, self, namespace, name, trigger)

    def close(self) -> None:
        for pool in self._pools.values():
            pool.shutdown(wait=True, cancel_futures=True)
        self.kafka.close()
        self.kube.close()


@dataclass(frozen=True)
class Outcome:
    gone: bool = False
    retry: bool = False
    """Kafka or the sink could not be reached: worth retrying with backoff."""
    applied: tuple[str, ...] = ()
    status_written: bool = False
    status: ConnectorStatus | None = None


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


def _controller_uid(obj: dict[str, Any]) -> str | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("uid"))
    return None


def _parse_time(text: str | None) -> datetime | None:
    if text is None:
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def _ref(namespace: str, name: str) -> str:
    return f"{namespace}/{name}"


def connector_path(namespace: str, name: str) -> str:
    return resource_path(CONNECTOR_API_VERSION, "connectors", namespace, name)


def reconcile_connector(
    ctx: OperatorContext, namespace: str, name: str, now: datetime | None = None
) -> Outcome:
    now = now or datetime.now(UTC)
    kube = ctx.kube
    body = kube.get(connector_path(namespace, name))
    if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
        return Outcome(gone=True)
    metadata = body["metadata"]
    uid = metadata["uid"]
    generation = metadata.get("generation")
    previous = ConnectorStatus.from_body(body)
    object_name = runtime_name(name)
    live: dict[str, dict[str, Any] | None] = {
        kind: kube.get(resource_path(api, plural, namespace, object_name))
        for kind, (api, plural) in OWNED.items()
    }
    live_deployment = live["Deployment"]

    # Objects of that name that something else controls are never taken over.
    for kind, obj in live.items():
        if obj is not None and _controller_uid(obj) != uid:
            conflict = Check(
                "False",
                Reason.OBJECT_CONFLICT,
                f"{kind} {namespace}/{object_name} exists and is not controlled by this"
                " Connector: rename or delete it.",
            )
            observed = _carry_over(previous, generation, blocked=conflict, deployment=None)
            return _finish(ctx, body, previous, observed, now, applied=(), retry=False)

    try:
        valid = validate_connector(
            body, lambda ns, n: kube.get(resource_path("v1", "configmaps", ns, n))
        )
    except InvalidSpec as error:
        invalid = Check("False", Reason.INVALID_SPEC, str(error))
        observed = _carry_over(previous, generation, blocked=invalid, deployment=live_deployment)
        return _finish(ctx, body, previous, observed, now, applied=(), retry=False)

    connector = valid.connector
    spec = connector.spec
    sink_uri, sink_check = resolve_sink(kube, connector, ctx.config.cluster_domain)
    facts: KafkaFacts | None = None
    try:
        facts = ctx.kafka.read(connector)
        source_check = _source_check(facts)
    except KafkaFactsError as error:
        source_check = Check("False", error.reason, error.message)

    current = int(live_deployment["spec"].get("replicas", 1)) if live_deployment else None
    decision = decide_replicas(
        spec,
        facts.total_partitions if facts is not None else None,
        facts.lag if facts is not None else None,
        current,
        _parse_time(previous.scale_down_since),
        now,
    )

    applied: list[str] = []
    config_hash = previous.config_hash
    replicas = current
    if sink_uri is not None:
        owner = owner_reference(body)
        config = render_runtime_config(connector, sink_uri, decision.replicas, valid.udf_source)
        desired = [
            build_configmap(connector, config, owner),
            build_deployment(connector, config, decision.replicas, ctx.config, owner),
            build_service(connector, owner),
        ]
        for obj in desired:
            if is_subset(obj, live[obj["kind"]]):
                continue
            try:
                live[obj["kind"]] = kube.apply(obj)
            except KubeError as error:
                if error.status != 422:
                    raise
                # What the CRD schema lets through but the object's own validation does
                # not (requests above limits, say): a spec error, not a crash loop.
                rejected = Check(
                    "False",
                    Reason.INVALID_SPEC,
                    f"spec.runtime: the API server rejected {obj['kind']}"
                    f" {namespace}/{object_name}: {error.message}",
                )
                observed = _carry_over(
                    previous, generation, blocked=rejected, deployment=live["Deployment"]
                )
                return _finish(
                    ctx, body, previous, observed, now, applied=tuple(applied), retry=False
                )
            applied.append(obj["kind"])
            log.info(
                "Applied %s %s",
                obj["kind"],
                _ref(namespace, object_name),
                extra={"connector": _ref(namespace, name)},
            )
        config_hash = config.hash
        replicas = decision.replicas
        if current is not None and current != decision.replicas:
            _rescaled(ctx, body, current, decision)
    elif live_deployment is None:
        replicas = None  # nothing deployed yet: there is no address to deliver to

    observed = Observed(
        generation=generation,
        source=source_check,
        sink=sink_check,
        deployment=live["Deployment"],
        paused=spec.paused,
        replicas=replicas,
        partitions=facts.total_partitions if facts is not None else previous.partitions,
        lag=facts.lag if facts is not None else None,
        selector=selector_string(name),
        sink_uri=sink_uri or previous.sink_uri,
        config_hash=config_hash,
        scale_down_since=(
            decision.scale_down_since.strftime("%Y-%m-%dT%H:%M:%SZ")
            if decision.scale_down_since is not None
            else None
        ),
    )
    if facts is not None and facts.dead_letter_created is not None:
        _event(ctx, body, "Normal", "CreatedDeadLetterTopic", facts.dead_letter_created)
    retry = not (source_check.ok and sink_check.ok)
    return _finish(ctx, body, previous, observed, now, applied=tuple(applied), retry=retry)


def _source_check(facts: KafkaFacts) -> Check:
    if facts.dead_letter_error is not None:
        return Check("False", Reason.DEAD_LETTER_TOPIC_FAILED, facts.dead_letter_error)
    topics = ", ".join(f"{topic} ({count})" for topic, count in facts.partitions.items())
    return Check("True", Reason.TOPICS_FOUND, f"Partitions: {topics}.")


def _carry_over(
    previous: ConnectorStatus,
    generation: int | None,
    *,
    blocked: Check,
    deployment: dict[str, Any] | None,
) -> Observed:
    """What to report when the operator does not act: the facts it had before."""
    return Observed(
        generation=generation,
        blocked=blocked,
        deployment=deployment,
        replicas=previous.replicas,
        partitions=previous.partitions,
        lag=previous.lag,
        selector=previous.selector,
        sink_uri=previous.sink_uri,
        config_hash=previous.config_hash,
        scale_down_since=previous.scale_down_since,
    )


def _finish(
    ctx: OperatorContext,
    body: dict[str, Any],
    previous: ConnectorStatus,
    observed: Observed,
    now: datetime,
    *,
    applied: tuple[str, ...],
    retry: bool,
) -> Outcome:
    status = build_status(previous, observed, now)
    written = False
    if status.to_api() != (body.get("status") or {}):
        metadata = body["metadata"]
        ctx.kube.apply(
            {
                "apiVersion": CONNECTOR_API_VERSION,
                "kind": KIND,
                "metadata": {"name": metadata["name"], "namespace": metadata["namespace"]},
                "status": status.to_api(),
            },
            subresource="status",
        )
        written = True
        ready = find(status.conditions, ConditionType.READY)
        log.info(
            "Updated status of Connector %s: Ready=%s (%s)",
            _ref(metadata["namespace"], metadata["name"]),
            ready.status if ready else "?",
            ready.reason if ready else "?",
        )
    _transition_events(ctx, body, previous, status)
    return Outcome(retry=retry, applied=applied, status_written=written, status=status, gone=False)


def _event(ctx: OperatorContext, body: dict[str, Any], type_: str, reason: str, text: str) -> None:
    ctx.kube.post_event(body, type_, reason, text)


def _rescaled(
    ctx: OperatorContext, body: dict[str, Any], before: int, decision: ScalingDecision
) -> None:
    metadata = body["metadata"]
    message = f"Scaled from {before} to {decision.replicas} replicas: {decision.why}."
    log.info(
        "Rescaled Deployment %s from %d to %d replicas: %s",
        _ref(metadata["namespace"], runtime_name(metadata["name"])),
        before,
        decision.replicas,
        decision.why,
    )
    _event(ctx, body, "Normal", "Rescaled", message)


# Conditions whose turning False is worth an Event, and whether a new message alone is
# (a different spec error is news; a Kafka error worded differently is not).
_WARN_ON = {
    ConditionType.SOURCE_READY: False,
    ConditionType.SINK_RESOLVED: False,
}


def _transition_events(
    ctx: OperatorContext, body: dict[str, Any], previous: ConnectorStatus, status: ConnectorStatus
) -> None:
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
            _event(ctx, body, "Warning", new.reason, new.message)
    new_ready = find(status.conditions, ConditionType.READY)
    old_ready = find(previous.conditions, ConditionType.READY)
    if new_ready is None:
        return
    blocked = (Reason.INVALID_SPEC, Reason.OBJECT_CONFLICT)
    if new_ready.reason in blocked and (
        old_ready is None
        or old_ready.reason != new_ready.reason
        or old_ready.message != new_ready.message
    ):
        _event(ctx, body, "Warning", new_ready.reason, new_ready.message)
    if new_ready.status == "True" and (old_ready is None or old_ready.status != "True"):
        _event(ctx, body, "Normal", "Ready", new_ready.message)


def run_reconcile(ctx: OperatorContext, namespace: str, name: str, trigger: str) -> Outcome | None:
    """A reconcile with what surrounds it: one at a time per Connector, backoff for the
    timer while Kafka or the sink are unreachable, metrics and logs. Unexpected errors
    propagate (kopf retries the handler)."""
    key = _ref(namespace, name)
    if trigger == "timer" and not ctx.backoff.due(key, time.monotonic()):
        return None
    with ctx.serialized(key):
        started = time.perf_counter()
        try:
            outcome = reconcile_connector(ctx, namespace, name)
        except Exception as error:
            ctx.metrics.errors.labels(error=type(error).__name__).inc()
            ctx.metrics.reconciles.labels(trigger=trigger, result="error").inc()
            raise
        finally:
            ctx.metrics.duration.observe(time.perf_counter() - started)
    if outcome.gone:
        ctx.forget(key)
        result = "gone"
    else:
        result = "retry" if outcome.retry else "ok"
        wait = ctx.backoff.record(key, not outcome.retry, time.monotonic())
        if wait is not None:
            log.info("Deferred Connector %s: unreachable, retrying in %.0fs", key, wait)
    ctx.metrics.reconciles.labels(trigger=trigger, result=result).inc()
    if not outcome.applied and not outcome.status_written:
        log.debug("Reconciled Connector %s: nothing changed", key)
    return outcome
