"""Prometheus metrics of one runtime process (docs/metrics.md), plus the small HTTP
server that exposes them with ``/healthz`` and ``/readyz``.

Metrics live in their own registry so several runtimes can share a test process.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge
from prometheus_client.exposition import generate_latest

from sluice_runtime.contract import STATUS_PATH
from sluice_runtime.loop_metrics import CounterChild, LoopCounter, LoopGauge, LoopHistogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
SIZE_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        # What the event loop updates for every request and batch: loop_metrics' types.
        self.consumed = LoopCounter(
            "sluice_consumed", "Records read from Kafka.", ["topic"], registry=r
        )
        self.filtered = LoopCounter(
            "sluice_filtered", "Records dropped by the filter or a UDF.", registry=r
        )
        self.delivered = LoopCounter(
            "sluice_delivered", "Events the function accepted.", registry=r
        )
        self.dead_lettered = Counter(
            "sluice_dead_lettered",
            "Records written to the dead-letter queue.",
            ["stage"],
            registry=r,
        )
        self.dropped = Counter(
            "sluice_dropped",
            "Failed records dropped (errorTolerance all, no DLQ).",
            ["stage"],
            registry=r,
        )
        self.retries = Counter(
            "sluice_retries", "Delivery retries by reason.", ["reason"], registry=r
        )
        self.batches = LoopCounter(
            "sluice_batches", "Batches closed, by trigger.", ["trigger"], registry=r
        )
        self.batch_size = LoopHistogram(
            "sluice_batch_size", "Events per batch.", buckets=SIZE_BUCKETS, registry=r
        )
        self.request_duration = LoopHistogram(
            "sluice_delivery_duration_seconds",
            "Duration of one HTTP request to the function.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.end_to_end = LoopHistogram(
            "sluice_end_to_end_latency_seconds",
            "Record timestamp to acknowledgement.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge("sluice_in_flight_batches", "Batches being delivered.", registry=r)
        self.batches_in_flight = 0  # what in_flight reports (counted on the event loop)
        self.in_flight.set_function(lambda: self.batches_in_flight)
        self.buffered = Gauge("sluice_buffered_records", "Records held in memory.", registry=r)
        self.buffered_bytes = Gauge("sluice_buffered_bytes", "Bytes held in memory.", registry=r)
        self.paused = Gauge(
            "sluice_paused_partitions", "Partitions paused by backpressure.", registry=r
        )
        self.reading_throttled = Gauge(
            "sluice_reading_throttled",
            "1 while the process holds its limit of records or bytes and reads no further.",
            registry=r,
        )
        self.blocked_partitions = Gauge(
            "sluice_blocked_partitions", "Partitions blocked by errorTolerance none.", registry=r
        )
        self.concurrency_limit = Gauge(
            "sluice_concurrency_limit", "Requests allowed in flight (AIMD).", registry=r
        )
        self.rate_limited_waits = Counter(
            "sluice_rate_limited_waits", "Requests that waited for the rate limit.", registry=r
        )
        self.lag = Gauge(
            "sluice_lag", "Records behind the partition's end.", ["topic", "partition"], registry=r
        )
        self.committed = LoopGauge(
            "sluice_committed_offset",
            "Last offset stored for commit.",
            ["topic", "partition"],
            registry=r,
        )

    def batches_closed(self, trigger: str) -> CounterChild:
        return self.batches.labels(trigger)

    def consumed_from(self, topic: str) -> CounterChild:
        return self.consumed.labels(topic)

    def forget_partition(self, topic: str, partition: int) -> None:
        """Drop a partition's series once the process no longer owns it: its next owner
        (another process of the pod, or another pod) reports it from then on, and a stale
        value would stand beside the fresh one (``pod_view`` merges processes' series)."""
        for gauge in (self.lag, self.committed):
            with contextlib.suppress(KeyError):
                gauge.remove(topic, str(partition))

    def render(self) -> bytes:
        return generate_latest(self.registry)


Route = Callable[[], tuple[int, bytes, str]]
"""Answers one path: (status, body, content type)."""


def metrics_route(registry: CollectorRegistry) -> Route:
    return lambda: (200, generate_latest(registry), CONTENT_TYPE_LATEST)


def probe_route(check: Callable[[], bool], failing: bytes) -> Route:
    return lambda: (200, b"ok\n", "text/plain") if check() else (503, failing, "text/plain")


class ProbeServer:
    """A small HTTP server for /metrics and probe endpoints, on its own thread (shared by
    the runtime and the operator)."""

    def __init__(self, routes: dict[str, Route], port: int, host: str = "0.0.0.0") -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                route = routes.get(self.path.split("?", 1)[0])
                status, body, content_type = (
                    route() if route else (404, b"not found\n", "text/plain")
                )
                self.send_response(status)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass  # probes every few seconds would drown the real logs

        self._server = ThreadingHTTPServer((host, port), Handler)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, daemon=True, name="probes"
        )

    def start(self) -> ProbeServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def runtime_probes(
    metrics: Metrics,
    port: int,
    ready: Callable[[], bool],
    alive: Callable[[], bool],
    status: Callable[[], bytes] | None = None,
    host: str = "0.0.0.0",
) -> ProbeServer:
    """/metrics, /healthz (the event loop still turns), /readyz (it consumes) and /status
    (the delivery health as JSON, ``health.RuntimeHealth``)."""
    routes = {
        "/metrics": metrics_route(metrics.registry),
        "/healthz": probe_route(alive, b"stuck\n"),
        "/readyz": probe_route(ready, b"not ready\n"),
    }
    if status is not None:
        routes[STATUS_PATH] = lambda: (200, status(), "application/json")
    return ProbeServer(routes, port, host)
