"""The probe endpoints kubelets and Prometheus call answer truthfully."""

from __future__ import annotations

import urllib.error
import urllib.request

from sluice_operator.metrics import OperatorMetrics, operator_probes
from sluice_runtime.metrics import Metrics, runtime_probes


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_operator_health_follows_its_loop_and_metrics_are_served() -> None:
    alive = {"yes": True}
    server = operator_probes(OperatorMetrics(), 0, lambda: alive["yes"], "127.0.0.1").start()
    try:
        assert get(server.port, "/healthz")[0] == 200
        alive["yes"] = False
        assert get(server.port, "/healthz") == (503, "stuck\n")
        status, body = get(server.port, "/metrics")
        assert status == 200
        assert "sluice_operator_reconcile_duration_seconds" in body
        assert get(server.port, "/nope")[0] == 404
    finally:
        server.stop()


def test_runtime_readiness_is_separate_from_liveness() -> None:
    ready, alive = {"yes": False}, {"yes": True}
    server = runtime_probes(Metrics(), 0, lambda: ready["yes"], lambda: alive["yes"]).start()
    try:
        assert get(server.port, "/healthz")[0] == 200
        alive["yes"] = False
        assert get(server.port, "/healthz") == (503, "stuck\n")
        alive["yes"] = True
        assert get(server.port, "/readyz") == (503, "not ready\n")
        ready["yes"] = True
        assert get(server.port, "/readyz")[0] == 200
        assert "sluice_consumed_total" in get(server.port, "/metrics?x=1")[1]
    finally:
        server.stop()
