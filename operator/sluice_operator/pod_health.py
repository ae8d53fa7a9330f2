"""The data plane's health, read from the runtime pods, and what it means for a Connector.

**The path.** Every runtime pod serves its delivery health as JSON on ``/status`` of its
metrics port (``sluice_runtime.health``). On each re-check the operator resolves the
runtime's headless Service, ``sluice-<name>.<namespace>.svc.<cluster domain>``, which the
cluster's DNS answers with the addresses of its ready pods, and reads ``/status`` from each.
Why this path: it needs no new rights at all. The pods keep no service-account token and
write nothing to the API server (a pod that could patch its Connector's status could also
lie about it or about another's); the operator needs neither ``list pods`` nor
``list endpointslices``, only what any pod may do: ask DNS and connect to a port that
Prometheus scrapes already. A NetworkPolicy that admits Prometheus to port 9090 must admit
the operator too. What Kafka alone can tell (lag) is read from Kafka (``kafka_facts``).

``FleetHealth`` adds up what the pods said; ``assess`` turns it into the verdict the
status needs (pure, unit-tested from numbers).
"""

from __future__ import annotations

import logging
import socket
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

from sluice_operator.builders import runtime_name
from sluice_operator.conditions import Reason
from sluice_operator.status import Check, Verdict
from sluice_runtime.contract import METRICS_PORT, STATUS_PATH
from sluice_runtime.health import BlockedPartition, RuntimeHealth, SinkAnswers

log = logging.getLogger("sluice.operator.health")

Resolver = Callable[[str, int], list[str]]
"""(host, port) → the ``address:port`` of every pod behind it; [] when none."""

READ_TIMEOUT = 1.0
"""Seconds one pod may take to answer: a pod that slow is counted as not answering."""

SINK_FAILING_RATIO = 0.5
"""Share of the sink's answers that failed (5xx, timeouts) in the window for SinkFailing."""
SINK_FAILING_MIN = 3
"""Failed requests in the window before SinkFailing: one timeout is not a failing sink."""
THROTTLED_RATIO = 0.05
"""Share of 429/503 answers from which the sink counts as throttling (no scale-out)."""
REBALANCE_STORM = 4
"""Rebalances in five minutes, as one pod saw them, that make Degraded/Rebalancing."""


def significant(value: float, digits: int = 2) -> float:
    """``value`` to ``digits`` significant digits: figures in the status that change only
    when they change noticeably, so a steady Connector is not rewritten every re-check."""
    if value == 0:
        return 0.0
    return float(f"{value:.{digits}g}")


def dns_resolver(host: str, port: int) -> list[str]:
    try:
        answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return []  # no such name (no ready pod yet) or no DNS: nothing to read
    found: list[str] = []
    for family, _type, _proto, _name, address in answers:
        ip = str(address[0])
        endpoint = f"[{ip}]:{port}" if family == socket.AF_INET6 else f"{ip}:{port}"
        if endpoint not in found:
            found.append(endpoint)
    return found


@dataclass(frozen=True)
class FleetHealth:
    """What the runtime pods of one Connector said, added up."""

    pods: tuple[RuntimeHealth, ...]
    silent: int = 0
    """Pods resolved that did not answer."""

    @cached_property
    def blocked(self) -> list[BlockedPartition]:
        return sorted(
            (b for pod in self.pods for b in pod.blocked), key=lambda b: (b.topic, b.partition)
        )

    @cached_property
    def sink(self) -> SinkAnswers:
        answers = [pod.sink for pod in self.pods]
        return SinkAnswers(
            requests=sum(a.requests for a in answers),
            failed=sum(a.failed for a in answers),
            throttled=sum(a.throttled for a in answers),
            rejected=sum(a.rejected for a in answers),
            last_error=next((a.last_error for a in answers if a.last_error), None),
        )

    @property
    def delivered_per_second(self) -> float:
        return sum(pod.delivered_per_second for pod in self.pods)

    @property
    def dead_lettered(self) -> int:
        return sum(pod.dead_lettered for pod in self.pods)

    @property
    def oldest_undelivered_seconds(self) -> float | None:
        ages = [p.oldest_undelivered_seconds for p in self.pods if p.oldest_undelivered_seconds]
        return max(ages) if ages else None

    @property
    def dead_letter_unavailable(self) -> RuntimeHealth | None:
        return next((p for p in self.pods if p.dead_letter_unavailable_since), None)

    @property
    def window_seconds(self) -> float:
        return max((pod.window_seconds for pod in self.pods), default=60.0)

    @property
    def throttled(self) -> bool:
        """The sink asks for less traffic: more replicas would only make it worse."""
        sink = self.sink
        return sink.throttled > 0 and sink.throttled >= THROTTLED_RATIO * sink.requests

    @property
    def sink_failing(self) -> bool:
        sink = self.sink
        return sink.failed >= SINK_FAILING_MIN and sink.failed >= SINK_FAILING_RATIO * (
            sink.requests
        )


def _blocked_message(blocked: list[BlockedPartition]) -> str:
    first = blocked[0]
    more = f" (and {len(blocked) - 1} more partitions)" if len(blocked) > 1 else ""
    return (
        f"Partition {first.topic}-{first.partition} is blocked at offset {first.offset} since"
        f" {first.since}{more}: {first.stage} failed: {first.error}. errorTolerance is none,"
        " so the partition waits at that record and retries it every retry.maxDelay: fix the"
        " function (or the record's cause) and it resumes by itself, or set"
        " errorTolerance: all with a dead-letter topic to set such records aside."
    )


def assess(fleet: FleetHealth | None, lag: int | None) -> Verdict:
    """The first problem that needs a person, most specific first. ``lag``: records the
    group has not committed (None when unknown), to tell a failing sink with work waiting
    from an idle one."""
    if fleet is None or not fleet.pods:
        return Verdict()
    if fleet.blocked:
        return Verdict(
            Check("True", Reason.DELIVERY_BLOCKED, _blocked_message(fleet.blocked)), True
        )
    unavailable = fleet.dead_letter_unavailable
    if unavailable is not None:
        message = (
            f"The dead-letter topic cannot be written since"
            f" {unavailable.dead_letter_unavailable_since}: {unavailable.dead_letter_error}."
            " Records that failed wait in their partition (nothing is lost or skipped): check"
            " that the topic exists and that the Connector's Kafka identity may write to it."
        )
        return Verdict(Check("True", Reason.DEAD_LETTER_UNAVAILABLE, message), True)
    if fleet.sink_failing:
        sink = fleet.sink
        flowing = fleet.delivered_per_second > 0
        message = (
            f"The sink failed {sink.failed} of {sink.requests} requests in the last"
            f" {fleet.window_seconds:g}s (last: {sink.last_error}); records are retried,"
            f" {'some still go through' if flowing else 'none go through'}. Check the"
            " function's logs and whether it is up and reachable from the runtime pods."
        )
        return Verdict(Check("True", Reason.SINK_FAILING, message), not flowing and (lag or 0) > 0)
    storm = max((pod.rebalances for pod in fleet.pods), default=0)
    if storm >= REBALANCE_STORM:
        message = (
            f"The consumer group rebalanced {storm} times in five minutes; each pauses"
            " delivery and may repeat records in flight. Look for runtime pods restarting"
            " (OOMKilled, failing probes) or a Deployment scaling back and forth."
        )
        return Verdict(Check("True", Reason.REBALANCING, message), False)
    return Verdict()


class PodHealthReader:
    def __init__(
        self,
        cluster_domain: str,
        resolver: Resolver = dns_resolver,
        port: int = METRICS_PORT,
        timeout: float = READ_TIMEOUT,
    ) -> None:
        self.cluster_domain = cluster_domain
        self.resolver = resolver
        self.port = port
        self.timeout = timeout

    def read(self, namespace: str, name: str) -> FleetHealth | None:
        """What the Connector's ready pods say; None when no pod could be found."""
        host = f"{runtime_name(name)}.{namespace}.svc.{self.cluster_domain}"
        endpoints = self.resolver(host, self.port)
        if not endpoints:
            return None
        pods: list[RuntimeHealth] = []
        silent = 0
        for endpoint in endpoints:
            health = self._read_one(endpoint)
            if health is None:
                silent += 1
            else:
                pods.append(health)
        return FleetHealth(tuple(pods), silent)

    def _read_one(self, endpoint: str) -> RuntimeHealth | None:
        url = f"http://{endpoint}{STATUS_PATH}"
        try:
            with _OPENER.open(url, timeout=self.timeout) as response:
                answer = response.read(MAX_HEALTH_BYTES + 1)
            if len(answer) > MAX_HEALTH_BYTES:
                raise ValueError(f"the answer is larger than {MAX_HEALTH_BYTES} bytes")
            return RuntimeHealth.model_validate_json(answer)
        except (OSError, ValueError) as error:  # ValidationError is a ValueError
            log.debug("No health from %s: %s", url, error)
            return None


MAX_HEALTH_BYTES = 1 << 20
"""A runtime's health report is a few kilobytes; whoever answers on a pod behind the
Connector's Service (anyone who may create pods in its namespace) must not make the one
operator every tenant shares read without bound."""


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer, not a place to go: followed, it would have the operator send
    requests wherever a pod in a tenant's namespace points, from the operator's network."""

    def redirect_request(self, *_args: object, **_kwargs: object) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)
