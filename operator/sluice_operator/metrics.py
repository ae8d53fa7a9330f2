"""The operator's own Prometheus metrics (``sluice_operator_`` prefix), in their own
registry so that several operators can share a test process."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest

from sluice_operator.kube import Write

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


class OperatorServer:
    """Serves /metrics and /healthz on one port. /healthz answers 200 while ``alive()``
    holds (the operator's event loop still runs its tasks), 503 otherwise."""

    def __init__(
        self, metrics: OperatorMetrics, port: int, alive: Callable[[], bool], host: str = ""
    ) -> None:
        registry = metrics.registry

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.startswith("/metrics"):
                    self._answer(200, generate_latest(registry), CONTENT_TYPE_LATEST)
                elif self.path == "/healthz":
                    ok = alive()
                    self._answer(200 if ok else 503, b"ok\n" if ok else b"stuck\n", "text/plain")
                else:
                    self._answer(404, b"not found\n", "text/plain")

            def _answer(self, status: int, body: bytes, content_type: str) -> None:
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
            target=self._server.serve_forever, daemon=True, name="operator-http"
        )

    def start(self) -> OperatorServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
