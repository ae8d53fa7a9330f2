"""The batcher closes batches on count, bytes and interval, and never loses an item."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from sluice_runtime.records import Batch, Event, Record
from sluice_runtime.window import Batcher


def item(offset: int) -> Event:
    return Event(Record("t", 0, offset, 0, None, b"x"), {"n": offset})


def test_count_closes_a_batch_at_max_messages() -> None:
    batcher = Batcher(max_messages=3, max_bytes=10**6, max_interval=10)
    closed = [b for n in range(7) for b in batcher.add(item(n), 10, now=0.0)]
    assert [[i.record.offset for i in b.events] for b in closed] == [[0, 1, 2], [3, 4, 5]]
    assert {b.trigger for b in closed} == {"count"}
    assert len(batcher) == 1


def test_bytes_close_before_overflowing() -> None:
    batcher = Batcher(max_messages=100, max_bytes=100, max_interval=10)
    closed = [b for n in range(5) for b in batcher.add(item(n), 40, now=0.0)]
    assert [len(b.events) for b in closed] == [2, 2]
    assert all(b.trigger == "bytes" and b.size <= 100 for b in closed)


def test_a_record_larger_than_max_bytes_travels_alone() -> None:
    batcher = Batcher(max_messages=100, max_bytes=100, max_interval=10)
    batcher.add(item(0), 10, now=0.0)
    closed = batcher.add(item(1), 500, now=0.0)
    assert [[i.record.offset for i in b.events] for b in closed] == [[0], [1]]


def test_interval_counts_from_the_first_item() -> None:
    batcher = Batcher(max_messages=100, max_bytes=10**6, max_interval=10)
    assert batcher.until_next(now=5.0) is None
    batcher.add(item(0), 1, now=100.0)
    batcher.add(item(1), 1, now=104.0)
    assert batcher.until_next(now=104.0) == 6.0
    assert batcher.until_next(now=111.0) == 0.0
    batch = batcher.flush("interval")
    assert [i.record.offset for i in batch.events] == [0, 1]
    assert batcher.until_next(now=111.0) is None


@given(
    sizes=st.lists(st.integers(min_value=0, max_value=60), max_size=300),
    max_messages=st.integers(min_value=1, max_value=12),
    max_bytes=st.integers(min_value=1, max_value=200),
    cuts=st.lists(st.integers(min_value=0, max_value=300), max_size=4),
)
def test_records_added_in_runs_make_the_batches_adding_one_by_one_makes(
    sizes: list[int], max_messages: int, max_bytes: int, cuts: list[int]
) -> None:
    """The pass-through fast path (add_records) closes the same batches, with the same
    records, triggers and sizes, as add for each record, however the records arrive."""
    records = [Record("t", 0, offset, 0, None, b"x" * size) for offset, size in enumerate(sizes)]
    one_by_one = Batcher(max_messages, max_bytes, 1.0)
    expected = [b for r in records for b in one_by_one.add(r, r.size, 0.0)]
    in_runs = Batcher(max_messages, max_bytes, 1.0)
    got = []
    bounds = [0, *sorted(min(cut, len(records)) for cut in cuts), len(records)]
    for start, stop in itertools.pairwise(bounds):
        got += in_runs.add_records(records[start:stop], 0.0)

    def shape(batches: list[Batch]) -> list[tuple[list[int], str, int]]:
        return [([e.record.offset for e in b.events], b.trigger, b.size) for b in batches]

    assert shape(got) == shape(expected)
    assert [e.record.offset for e in in_runs.flush("drain").events] == [
        e.record.offset for e in one_by_one.flush("drain").events
    ]
