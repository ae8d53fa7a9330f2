"""Only offsets below every unacknowledged record are committable."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sluice_runtime.backpressure import ProcessBuffer
from sluice_runtime.ledger import OffsetTracker, PartitionLedger
from sluice_runtime.metrics import Metrics
from sluice_runtime.records import Event, Outcome, Record


def test_out_of_order_acks_wait_for_the_gap() -> None:
    tracker = OffsetTracker()
    for offset in (10, 11, 12, 13):
        tracker.register(offset)
    assert tracker.ack([12, 13]) is None
    assert tracker.committable is None
    assert tracker.ack([10]) == 11
    assert tracker.ack([11]) == 14
    assert len(tracker) == 0


def test_gaps_in_offsets_from_compaction_are_fine() -> None:
    tracker = OffsetTracker()
    for offset in (3, 7, 9):
        tracker.register(offset)
    assert tracker.ack([3, 7]) == 8
    assert tracker.ack([9]) == 10


@given(st.permutations(list(range(30))))
def test_committable_never_passes_an_unacked_record(order: list[int]) -> None:
    tracker = OffsetTracker()
    for offset in range(30):
        tracker.register(offset)
    acked: set[int] = set()
    for offset in order:
        tracker.ack([offset])
        acked.add(offset)
        position = tracker.committable
        if position is not None:
            assert all(o in acked for o in range(position))
        lowest_missing = min(set(range(30)) - acked, default=30)
        assert (position or 0) == lowest_missing
        # What the health report ages: the oldest record still without an Outcome.
        assert tracker.first_pending == (lowest_missing if lowest_missing < 30 else None)


def test_the_oldest_pending_offset_after_acks_in_bulk() -> None:
    """Acknowledged prefixes are released lazily, in bulk: the oldest pending offset must
    skip them, before and after they are compacted away (past 4,096 of them)."""
    tracker = OffsetTracker()
    tracker.register_all(list(range(10_000)))
    for start in range(0, 10_000, 700):
        stop = min(start + 700, 10_000)
        assert tracker.first_pending == start
        assert tracker.ack(list(range(start, stop))) == stop
    assert tracker.first_pending is None
    assert len(tracker) == 0


class RecordingControl:
    """The source side of a ledger: remembers what it was told."""

    def __init__(self) -> None:
        self.stored: list[int] = []
        self.paused: list[bool] = []

    def store(self, topic: str, partition: int, next_offset: int) -> None:
        self.stored.append(next_offset)

    def set_paused(self, topic: str, partition: int, paused: bool) -> None:
        self.paused.append(paused)


def make_ledger(max_records: int = 100) -> tuple[PartitionLedger, RecordingControl]:
    metrics = Metrics()
    control = RecordingControl()
    process = ProcessBuffer(10_000, 2**30, metrics, lambda _reading: None)
    ledger = PartitionLedger(
        "t", 0, control, process, metrics, max_records=max_records, max_bytes=2**30
    )
    return ledger, control


def records(*offsets: int) -> list[Record]:
    return [Record("t", 0, offset, 0, None, b"v") for offset in offsets]


def test_a_fanned_out_record_is_delivered_only_after_its_last_event() -> None:
    ledger, control = make_ledger()
    first, second = records(0, 1)
    ledger.enter([first, second])
    ledger.expect_events(first, 2)
    ledger.events_delivered([Event(first, "a", 0), Event(second, "x")])
    assert control.stored == []  # offset 0 still has an event in flight
    ledger.events_delivered([Event(first, "b", 1)])
    assert control.stored == [2]


def test_events_of_a_failed_record_do_not_deliver_it_and_its_settlement_does() -> None:
    ledger, control = make_ledger()
    (record,) = records(0)
    ledger.enter([record])
    ledger.expect_events(record, 3)
    assert ledger.failed_for_good(record)  # its first event failed
    ledger.events_delivered([Event(record, "b", 1), Event(record, "c", 2)])
    assert control.stored == []
    ledger.settled(record, Outcome.DEAD_LETTERED)
    assert control.stored == [1]
    assert ledger.failed == {}  # every event accounted for: nothing kept


def test_a_record_fails_once_however_many_of_its_events_fail() -> None:
    ledger, control = make_ledger()
    (record,) = records(0)
    ledger.enter([record])
    ledger.expect_events(record, 3)
    assert ledger.failed_for_good(record)
    assert not ledger.failed_for_good(record)  # its second event, in a later batch
    ledger.events_not_sent([Event(record, "c", 2)])  # its third, left out of a batch
    ledger.settled(record, Outcome.DEAD_LETTERED)
    assert control.stored == [1]
    assert ledger.failed == {}
    assert (ledger.held_records, ledger.held_bytes) == (0, 0)


def test_nothing_is_committed_past_a_record_without_an_outcome() -> None:
    ledger, control = make_ledger()
    read = records(0, 1, 2)
    ledger.enter(read)
    ledger.filtered([read[2]])
    ledger.events_delivered([Event(read[1], "x")])
    assert control.stored == []
    ledger.events_delivered([Event(read[0], "x")])
    assert control.stored == [3]


def test_a_full_partition_pauses_and_resumes_at_half() -> None:
    ledger, control = make_ledger(max_records=4)
    read = records(0, 1, 2, 3)
    ledger.enter(read)
    assert control.paused == [True]
    ledger.filtered(read[:1])
    assert control.paused == [True]  # 3 held: above half
    ledger.filtered(read[1:2])
    assert control.paused == [True, False]
