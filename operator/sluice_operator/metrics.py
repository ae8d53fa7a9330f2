"""The operator's own Prometheus metrics (``sluice_operator_`` prefix), in their own
registry so that several operators can share a test process."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Histogram

from sluice_operator.kube import Write
from sluice_runtime.metrics import ProbeServer, metrics_route, probe_route

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class OperatorMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.reconciles = Counter(
            "sluice_operator_reconciles",
            "Reconciles of a Connector, by trigger and result.",
            ["trigger", "result"],
            registry=r,
        )
        self.errors = Counter(
            "sluice_operator_reconcile_errors",
            "Reconciles that raised (retried by kopf), by exception type.",
            ["error"],
            registry=r,
        )
        self.duration = Histogram(
            "sluice_operator_reconcile_duration_seconds",
            "Duration of one reconcile.",
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.writes = Counter(
            "sluice_operator_writes",
            "Writes to the API server, by verb and kind (zero when nothing changes).",
            ["verb", "kind"],
            registry=r,
        )

    def count_write(self, write: Write) -> None:
        self.writes.labels(verb=write.verb, kind=write.kind).inc()


def operator_probes(
    metrics: OperatorMetrics, port: int, alive: Callable[[], bool], host: str = ""
) -> ProbeServer:
    """/metrics and /healthz on one port. /healthz answers 200 while ``alive()`` holds (the
    operator's event loop still runs its tasks), 503 otherwise."""
    return ProbeServer(
        {"/metrics": metrics_route(metrics.registry), "/healthz": probe_route(alive, b"stuck\n")},
        port,
        host,
    )
