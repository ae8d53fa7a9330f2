"""Only offsets below every unacknowledged record are committable."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sluice_runtime.offsets import OffsetTracker


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
