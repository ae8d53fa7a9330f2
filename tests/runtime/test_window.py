"""The batcher closes batches on count, bytes and interval, and never loses an item."""

from __future__ import annotations

from sluice_runtime.records import Event, Record
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
