"""What one runtime process holds in memory, and how reading slows when that is too much.

Two bounds, two mechanisms (``runtime.buffer``):

- **Per partition** (``maxRecordsPerPartition``, ``maxBytesPerPartition``): the lane pauses
  its partition in librdkafka and resumes it at half (see ``Lane``). That holds back one
  slow or blocked partition without holding back the others. It is the exception:
  librdkafka throws away what it had prefetched for a partition it pauses and fetches it
  again on resume, which takes long enough to leave a busy lane idle.
- **Per process** (``maxRecords``, ``maxBytes``): this class. When the process is full, the
  consumers stop taking records (one per 100 ms still, which keeps heartbeats, rebalances
  and ``max.poll.interval.ms`` served) and librdkafka stops fetching by itself once its
  bounded prefetch queue is full. Nothing is thrown away; when half has been delivered,
  reading goes on at full speed from records that are already local.
"""

from __future__ import annotations

from collections.abc import Callable

from sluice_runtime.metrics import Metrics


class ProcessBuffer:
    def __init__(
        self,
        max_records: int,
        max_bytes: int,
        metrics: Metrics,
        set_reading: Callable[[bool], None],
    ) -> None:
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.records = 0
        self.bytes = 0
        self.throttled = False
        self._metrics = metrics
        self._set_reading = set_reading
        # Read when /metrics is scraped, not written on every change: add and remove run
        # for every hand-over and every batch, and a gauge's every write takes a lock.
        metrics.buffered.set_function(lambda: self.records)
        metrics.buffered_bytes.set_function(lambda: self.bytes)

    def add(self, records: int, size: int) -> None:
        """Records were read into a lane."""
        self.records += records
        self.bytes += size
        if not self.throttled and (
            self.records >= self.max_records or self.bytes >= self.max_bytes
        ):
            self._throttle(True)

    def remove(self, records: int, size: int) -> None:
        """Records were delivered, filtered, dead-lettered or dropped on revoke."""
        self.records -= records
        self.bytes -= size
        if (
            self.throttled
            and self.records <= self.max_records // 2
            and self.bytes <= self.max_bytes // 2
        ):
            self._throttle(False)

    def _throttle(self, throttled: bool) -> None:
        self.throttled = throttled
        self._metrics.reading_throttled.set(1 if throttled else 0)
        self._set_reading(not throttled)
