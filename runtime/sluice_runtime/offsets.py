"""Which offset of a partition may be committed.

Records are registered in the order they were read and acknowledged in any order (batches
of an unordered or key-ordered lane finish out of order). The committable position is one
past the longest acknowledged prefix: an offset is never committed while any record at or
below it is still neither delivered, filtered nor dead-lettered.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable


class OffsetTracker:
    def __init__(self) -> None:
        self._order: deque[int] = deque()
        self._acked: set[int] = set()
        self._next: int | None = None  # the next offset to commit (Kafka's convention)

    def __len__(self) -> int:
        """Records read and not yet acknowledged-in-prefix."""
        return len(self._order)

    def register(self, offset: int) -> None:
        self._order.append(offset)

    def ack(self, offsets: Iterable[int]) -> int | None:
        """Acknowledge records; returns the new committable position when it moved."""
        self._acked.update(offsets)
        moved = False
        order, acked = self._order, self._acked
        while order and order[0] in acked:
            offset = order.popleft()
            acked.discard(offset)
            self._next = offset + 1
            moved = True
        return self._next if moved else None

    @property
    def committable(self) -> int | None:
        return self._next
