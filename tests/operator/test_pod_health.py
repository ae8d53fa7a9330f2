"""What the pods' reports mean for a Connector's conditions (pod_health.assess), and the
reader's path: the headless Service's name, as cluster DNS would answer it."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sluice_operator.conditions import Reason
from sluice_operator.pod_health import FleetHealth, PodHealthReader, assess, significant
from sluice_runtime.health import BlockedPartition, RuntimeHealth, SinkAnswers


def pod(**fields: Any) -> RuntimeHealth:
    return RuntimeHealth.model_validate(fields)


BLOCKED = BlockedPartition(
    topic="orders",
    partition=2,
    offset=17,
    since="2026-01-01T00:00:00Z",
    stage="deliver",
    error="HTTP 400: bad",
)


def test_nothing_wrong_or_nothing_read_is_no_problem() -> None:
    assert assess(None, 100).problem is None
    assert assess(FleetHealth((pod(deliveredPerSecond=10),)), 100).problem is None


def test_a_blocked_partition_stops_delivery_and_names_partition_offset_and_error() -> None:
    verdict = assess(FleetHealth((pod(), pod(blocked=[BLOCKED.model_dump()]))), 5)
    assert verdict.problem is not None
    assert verdict.stops_delivery
    assert verdict.problem.reason == Reason.DELIVERY_BLOCKED
    message = verdict.problem.message
    assert "orders-2 is blocked at offset 17 since 2026-01-01T00:00:00Z" in message
    assert "HTTP 400: bad" in message
    assert "errorTolerance: all" in message


def test_a_failing_sink_stops_delivery_only_when_nothing_goes_through_and_work_waits() -> None:
    failing = SinkAnswers(requests=10, failed=8, last_error="HTTP 502").model_dump()
    stuck = assess(FleetHealth((pod(sink=failing),)), 40)
    assert stuck.problem is not None
    assert stuck.problem.reason == Reason.SINK_FAILING
    assert stuck.stops_delivery
    assert "HTTP 502" in stuck.problem.message
    limping = assess(FleetHealth((pod(sink=failing, deliveredPerSecond=1.5),)), 40)
    assert limping.problem is not None
    assert not limping.stops_delivery
    one_timeout = SinkAnswers(requests=1, failed=1).model_dump()
    assert assess(FleetHealth((pod(sink=one_timeout),)), 40).problem is None


def test_throttling_is_not_failing_but_holds_back_growth() -> None:
    throttled = FleetHealth((pod(sink=SinkAnswers(requests=100, throttled=10).model_dump()),))
    assert assess(throttled, 1000).problem is None
    assert throttled.throttled
    assert not throttled.sink_failing


def test_an_unwritable_dead_letter_queue_and_a_rebalance_storm() -> None:
    dlq = pod(deadLetterUnavailableSince="2026-01-01T00:00:00Z", deadLetterError="dlq: denied")
    verdict = assess(FleetHealth((dlq,)), 0)
    assert verdict.problem is not None
    assert verdict.problem.reason == Reason.DEAD_LETTER_UNAVAILABLE
    assert "dlq: denied" in verdict.problem.message
    storm = assess(FleetHealth((pod(rebalances=5),)), 0)
    assert storm.problem is not None
    assert storm.problem.reason == Reason.REBALANCING
    assert not storm.stops_delivery


def test_figures_add_up_over_pods() -> None:
    fleet = FleetHealth(
        (
            pod(deliveredPerSecond=10, deadLettered=1, oldestUndeliveredSeconds=3),
            pod(deliveredPerSecond=5.5, deadLettered=2, oldestUndeliveredSeconds=30),
        ),
    )
    assert fleet.delivered_per_second == 15.5
    assert fleet.dead_lettered == 3
    assert fleet.oldest_undelivered_seconds == 30
    assert significant(1234.5) == 1200
    assert significant(0.0123) == 0.012


def test_the_reader_asks_every_pod_behind_the_service_name() -> None:
    answers = [pod(deliveredPerSecond=2), pod(deliveredPerSecond=3)]
    servers = []
    for health in answers:
        body = health.model_dump_json(by_alias=True).encode()

        class Handler(BaseHTTPRequestHandler):
            payload = body

            def do_GET(self) -> None:
                self.send_response(200 if self.path == "/status" else 404)
                self.end_headers()
                self.wfile.write(self.payload)

            def log_message(self, *_: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    asked: list[tuple[str, int]] = []

    def resolve(host: str, port: int) -> list[str]:
        asked.append((host, port))
        return [f"127.0.0.1:{s.server_address[1]}" for s in servers] + ["127.0.0.1:1"]

    try:
        fleet = PodHealthReader("cluster.local", resolve).read("ads", "views")
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
    assert asked == [("sluice-views.ads.svc.cluster.local", 9090)]
    assert fleet is not None
    assert fleet.silent == 1
    assert fleet.delivered_per_second == 5
    assert PodHealthReader("cluster.local", lambda _h, _p: []).read("ads", "views") is None
    assert json.loads(answers[0].model_dump_json(by_alias=True))["deliveredPerSecond"] == 2


def serve(answer: tuple[int, dict[str, str], bytes], hits: list[str]) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            status, headers, body = answer
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_a_pod_cannot_send_the_operator_elsewhere_or_make_it_read_without_bound() -> None:
    """Whoever answers on a pod behind the Connector's Service may be anyone who can create
    pods in the namespace: a redirect is not followed (the operator would send requests from
    its own network position), and an answer over 1 MiB is not read. Both count as silent."""
    report = pod(deliveredPerSecond=2).model_dump_json(by_alias=True).encode()
    elsewhere_hits: list[str] = []
    elsewhere = serve((200, {}, report), elsewhere_hits)
    target = f"http://127.0.0.1:{elsewhere.server_address[1]}/latest/meta-data/"
    redirecting = serve((302, {"location": target}, b""), [])
    padded = serve((200, {}, report + b" " * (2 << 20)), [])  # valid JSON, 2 MiB long
    honest = serve((200, {}, report), [])
    servers = [elsewhere, redirecting, padded, honest]
    pods = [redirecting, padded, honest]
    try:
        fleet = PodHealthReader(
            "cluster.local", lambda _h, _p: [f"127.0.0.1:{s.server_address[1]}" for s in pods]
        ).read("ads", "views")
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
    assert elsewhere_hits == []
    assert fleet is not None
    assert (fleet.silent, fleet.delivered_per_second) == (2, 2)
