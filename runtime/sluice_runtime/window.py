"""Batching by count, size and interval. The batcher does no I/O and owns no timer: the
lane asks it what to do (``add`` → closed batches, ``until_next`` → how long to wait) and
owns the clock, which keeps this logic exact and testable without sleeping."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sluice_runtime.records import Batch, Deliverable, Record

_NONE_CLOSED: list[Batch] = []  # shared and never changed: add() closed nothing


@dataclass(slots=True)
class Batcher:
    max_messages: int
    max_bytes: int
    max_interval: float
    _items: list[Deliverable] = field(default_factory=list)
    _bytes: int = 0
    _opened_at: float | None = None

    def __len__(self) -> int:
        return len(self._items)

    def add(self, event: Deliverable, size: int, now: float) -> list[Batch]:
        """Add one event; returns the batches this closes (none, or one or two)."""
        items = self._items
        if items and self._bytes + size < self.max_bytes and len(items) + 1 < self.max_messages:
            items.append(event)  # the common case: the open batch takes it and stays open
            self._bytes += size
            return _NONE_CLOSED
        closed: list[Batch] = []
        # An event that would overflow the byte budget starts a new batch, so batches stay
        # under maxBytes unless a single record is larger on its own.
        if items and self._bytes + size > self.max_bytes:
            closed.append(self.flush("bytes"))
        if not self._items:
            self._opened_at = now
        self._items.append(event)
        self._bytes += size
        if len(self._items) >= self.max_messages:
            closed.append(self.flush("count"))
        elif self._bytes >= self.max_bytes:
            closed.append(self.flush("bytes"))
        return closed

    def add_records(self, records: list[Record], now: float) -> list[Batch]:
        """``add`` for each record as its own event (records that pass through)."""
        return self.add_all(records, [record.size for record in records], now)

    def add_all(self, events: Sequence[Deliverable], sizes: list[int], now: float) -> list[Batch]:
        """``add`` for each event with its size, with the same batches as a result; runs of
        events that fit the open batch without closing it go in with one list extend, not
        one call each."""
        closed: list[Batch] = []
        items = self._items
        index, end = 0, len(events)
        while index < end:
            items = self._items
            if items:
                room = self.max_messages - len(items) - 1  # the closing one goes through add
                if room > 0:
                    size = sum(sizes[index : index + room])
                    if self._bytes + size < self.max_bytes:
                        run = events[index : index + room]
                        items.extend(run)
                        self._bytes += size
                        index += len(run)
                        continue
            # One by one until a batch closes (the byte bound is exact there), or the first
            # event of a batch opened it.
            while index < end:
                event = events[index]
                size = sizes[index]
                index += 1
                done = self.add(event, size, now)
                if done:
                    closed += done
                    break
                if len(self._items) == 1:
                    break
        return closed

    def until_next(self, now: float) -> float | None:
        """Seconds until the open batch is due by interval; None when nothing is open."""
        if self._opened_at is None:
            return None
        return max(0.0, self._opened_at + self.max_interval - now)

    def flush(self, trigger: str) -> Batch:
        batch = Batch(self._items, trigger, self._bytes)
        self._items = []
        self._bytes = 0
        self._opened_at = None
        return batch
