"""The runtime's account of its delivery (served on /status): what it counts, from plain
calls, as the failure policy, the deliverer and the lanes make them."""

from __future__ import annotations

from sluice_runtime.health import HealthTracker, RuntimeHealth
from sluice_runtime.records import RecordFailure


def test_a_held_record_names_its_partition_offset_and_error_until_it_goes_through() -> None:
    tracker = HealthTracker()
    failure = RecordFailure("deliver", "HTTP 400: bad order", 400, 1)
    token = tracker.blocked("orders", 3, 42, failure)
    health = tracker.snapshot(4, None, 0, 0)
    [blocked] = health.blocked
    assert (blocked.topic, blocked.partition, blocked.offset) == ("orders", 3, 42)
    assert (blocked.stage, blocked.error) == ("deliver", "HTTP 400: bad order")
    assert "orders-3 blocked at offset 42" in health.summary()
    tracker.unblocked(token)
    assert tracker.snapshot(4, None, 0, 0).blocked == []


def test_sink_answers_are_split_into_failed_throttled_and_rejected() -> None:
    tracker = HealthTracker()
    for status, ok in ((200, True), (500, False), (None, False), (429, False), (503, False)):
        tracker.sink_answered(status, ok, f"answer {status}")
    tracker.sink_answered(400, False, "HTTP 400")
    sink = tracker.snapshot(1, None, 0, 0).sink
    assert (sink.requests, sink.failed, sink.throttled, sink.rejected) == (6, 2, 2, 1)
    assert sink.last_error == "HTTP 400"


def test_the_dead_letter_queue_is_unavailable_until_a_write_succeeds() -> None:
    tracker = HealthTracker()
    tracker.dead_letter_failed("dlq: broker down")
    health = tracker.snapshot(1, None, 0, 0)
    assert health.dead_letter_unavailable_since is not None
    assert health.dead_letter_error == "dlq: broker down"
    tracker.dead_letter_written()
    assert tracker.snapshot(1, None, 0, 0).dead_letter_unavailable_since is None


def test_rates_oldest_age_and_the_json_the_operator_reads() -> None:
    tracker = HealthTracker()
    tracker.snapshot(2, None, 100, 0)
    tracker._samples[0] = (tracker._samples[0][0] - 10, 100, 0)  # ten seconds ago
    health = tracker.snapshot(2, 1_000, 600, 3)
    assert 49 < health.delivered_per_second <= 50
    assert health.dead_lettered == 3
    assert health.oldest_undelivered_seconds is not None
    assert health.oldest_undelivered_seconds > 1e9  # a timestamp of 1970
    assert RuntimeHealth.model_validate_json(tracker.last_json) == health


def test_cooperative_callbacks_close_together_are_one_rebalance() -> None:
    tracker = HealthTracker()
    tracker.rebalanced()
    tracker.rebalanced()
    assert tracker.snapshot(1, None, 0, 0).rebalances == 1
