"""A partition's lane: records → processors → window → delivery → acks.

Each assigned partition gets one lane. Inside it, ``slots`` run concurrently; each slot is
one ordered stream of batches:

- ``ordered``: one slot, one batch in flight;
- ``unordered``: one slot, up to ``maxInFlight`` batches in flight;
- ``key-ordered``: ``maxInFlight`` slots chosen by key hash, each serial, so records with the
  same key stay in order while different keys run in parallel.

A record is acknowledged to the offset tracker only when it was filtered, delivered or
dead-lettered; the tracker decides what may be committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from sluice_runtime.config import Connector
from sluice_runtime.deadletter import FailurePath
from sluice_runtime.delivery import Deliverer, Stopping
from sluice_runtime.envelope import Record
from sluice_runtime.metrics import Metrics
from sluice_runtime.offsets import OffsetTracker
from sluice_runtime.processors import Processor, RecordFailure
from sluice_runtime.window import Batch, Batcher, Item

log = logging.getLogger("sluice.lane")
trace = logging.getLogger("sluice.trace")


@dataclass
class LaneServices:
    """What every lane of a process shares."""

    connector: Connector
    processor: Processor
    deliverer: Deliverer
    failures: FailurePath
    metrics: Metrics
    store_offset: Callable[[str, int, int], None]  # (topic, partition, next offset)
    set_paused: Callable[[str, int, bool], None]
    trace_records: bool = False
    process_bytes: list[int] = field(default_factory=lambda: [0])  # shared, mutable counter


class Slot:
    """One serial stream of batches inside a lane."""

    def __init__(self, lane: Lane, concurrency: int) -> None:
        window = lane.services.connector.spec.window
        self.lane = lane
        self.pending: deque[Record] = deque()
        self.batcher = Batcher(window.max_messages, window.max_bytes, window.max_interval)
        self.wakeup = asyncio.Event()
        self.in_flight: set[asyncio.Task[None]] = set()
        self.concurrency = concurrency
        self.task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        window = self.lane.services.connector.spec.window
        while True:
            await self._take_pending()
            if self.lane.draining and not self.pending:
                if len(self.batcher):
                    await self._dispatch(self.batcher.flush("drain"))
                await self._wait_in_flight(0)
                return
            if len(self.batcher) and (window.max_interval == 0 or self._due()):
                await self._dispatch(self.batcher.flush("interval"))
                continue
            if self.pending:
                continue
            self.wakeup.clear()
            timeout = self.batcher.until_next(time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wakeup.wait(), timeout)

    def _due(self) -> bool:
        remaining = self.batcher.until_next(time.monotonic())
        return remaining is not None and remaining <= 0

    async def _take_pending(self) -> None:
        """Process what is waiting and feed the window; deliver batches as they close."""
        services = self.lane.services
        while self.pending:
            record = self.pending.popleft()
            processed = services.processor(record)
            if isinstance(processed, RecordFailure):
                await self.lane.fail(record, processed)
                continue
            if not processed:
                services.metrics.filtered.inc()
                if services.trace_records:
                    trace.info("filtered", extra={"record": record.event_id})
                self.lane.finish(record, 0)
                continue
            self.lane.outstanding[record.offset] = len(processed)
            now = time.monotonic()
            share = max(1, record.size // len(processed))
            for index, data in enumerate(processed):
                for batch in self.batcher.add(Item(record, data, index), share, now):
                    await self._dispatch(batch)

    async def _dispatch(self, batch: Batch) -> None:
        metrics = self.lane.services.metrics
        metrics.batches.labels(trigger=batch.trigger).inc()
        metrics.batch_size.observe(len(batch.items))
        if self.concurrency == 1:
            await self._deliver(batch)
            return
        await self._wait_in_flight(self.concurrency - 1)
        task = asyncio.create_task(self._deliver(batch))
        self.in_flight.add(task)
        task.add_done_callback(self.in_flight.discard)

    async def _wait_in_flight(self, at_most: int) -> None:
        while len(self.in_flight) > at_most:
            await asyncio.wait(self.in_flight, return_when=asyncio.FIRST_COMPLETED)

    async def _deliver(self, batch: Batch) -> None:
        services = self.lane.services
        services.metrics.in_flight.inc()
        try:
            failures = await services.deliverer.deliver(batch.items, self._delivered)
        except Stopping:
            return  # what was not acknowledged is read again after restart
        finally:
            services.metrics.in_flight.dec()
        # A record fails once, however many of its events failed.
        failed: dict[int, tuple[Record, RecordFailure]] = {}
        for item, failure in failures:
            failed.setdefault(item.record.offset, (item.record, failure))
        for record, failure in failed.values():
            await self.lane.fail(record, failure)

    def _delivered(self, items: list[Item]) -> None:
        services = self.lane.services
        services.metrics.delivered.inc(len(items))
        for item in items:
            if services.trace_records:
                trace.info("delivered", extra={"record": item.event_id})
            self.lane.finish(item.record, 1)


class Lane:
    def __init__(self, topic: str, partition: int, services: LaneServices) -> None:
        self.topic = topic
        self.partition = partition
        self.services = services
        delivery = services.connector.spec.delivery
        buffer = services.connector.spec.runtime.buffer
        self.max_records = buffer.max_records_per_partition
        self.max_bytes = buffer.max_bytes_per_partition
        self.process_max_bytes = buffer.max_bytes
        self.tracker = OffsetTracker()
        self.outstanding: dict[int, int] = {}  # offset -> events not yet delivered
        self.failed_offsets: set[int] = set()
        self.buffered_records = 0
        self.buffered_bytes = 0
        self.paused = False
        self.draining = False
        self.blocked = False
        if delivery.ordering == "key-ordered":
            self.slots = [Slot(self, 1) for _ in range(delivery.max_in_flight)]
        elif delivery.ordering == "unordered":
            self.slots = [Slot(self, delivery.max_in_flight)]
        else:
            self.slots = [Slot(self, 1)]

    def start(self) -> None:
        for slot in self.slots:
            slot.task = asyncio.create_task(slot.run(), name=f"lane-{self.topic}-{self.partition}")

    def feed(self, records: list[Record]) -> None:
        metrics = self.services.metrics
        size = 0
        for record in records:
            self.tracker.register(record.offset)
            slots = self.slots
            slot = slots[0] if len(slots) == 1 else slots[_key_slot(record.key, len(slots))]
            slot.pending.append(record)
            size += record.size
        self.buffered_records += len(records)
        self.buffered_bytes += size
        self.services.process_bytes[0] += size
        metrics.buffered.inc(len(records))
        metrics.buffered_bytes.inc(size)
        for slot in self.slots:
            if slot.pending:
                slot.wakeup.set()
        if not self.paused and (
            self.buffered_records >= self.max_records
            or self.buffered_bytes >= self.max_bytes
            or self.services.process_bytes[0] >= self.process_max_bytes
        ):
            self._set_paused(True)

    def finish(self, record: Record, events: int) -> None:
        """One event of a record is done (or the whole record, with events=0)."""
        if events:
            if record.offset in self.failed_offsets:
                return  # the record was dead-lettered as a whole already
            left = self.outstanding.get(record.offset, 1) - events
            if left > 0:
                self.outstanding[record.offset] = left
                return
            self.outstanding.pop(record.offset, None)
        self.buffered_records -= 1
        self.buffered_bytes -= record.size
        self.services.process_bytes[0] -= record.size
        metrics = self.services.metrics
        metrics.buffered.dec()
        metrics.buffered_bytes.dec(record.size)
        metrics.end_to_end.observe(max(0.0, time.time() - record.timestamp / 1000))
        moved = self.tracker.ack((record.offset,))
        if moved is not None:
            self.services.store_offset(self.topic, self.partition, moved)
            metrics.committed.labels(topic=self.topic, partition=str(self.partition)).set(moved)
        if self.paused and (
            self.buffered_records <= self.max_records // 2
            and self.buffered_bytes <= self.max_bytes // 2
            and self.services.process_bytes[0] <= self.process_max_bytes // 2
        ):
            self._set_paused(False)

    async def fail(self, record: Record, failure: RecordFailure) -> None:
        """A record failed for good: to the failure path, then acknowledged."""
        self.outstanding.pop(record.offset, None)
        self.failed_offsets.add(record.offset)
        tolerance = self.services.connector.spec.delivery.error_tolerance
        if tolerance == "none" and failure.stage != "deliver":
            # errorTolerance none: nothing moves past a failed record; the lane holds until
            # the runtime restarts (typically with a fixed spec).
            self.blocked = True
            self.services.metrics.blocked_partitions.inc()
            log.error(
                "Partition %s-%d blocked at offset %d: %s failed: %s",
                self.topic,
                self.partition,
                record.offset,
                failure.stage,
                failure.reason,
            )
            await asyncio.Event().wait()
        await self.services.failures.handle(record, failure)
        if self.services.trace_records:
            trace.info(
                "failed",
                extra={"record": record.event_id, "stage": failure.stage, "reason": failure.reason},
            )
        self.finish(record, 0)

    def _set_paused(self, paused: bool) -> None:
        self.paused = paused
        log.info(
            "%s partition %s-%d (%d records, %d bytes buffered)",
            "Paused" if paused else "Resumed",
            self.topic,
            self.partition,
            self.buffered_records,
            self.buffered_bytes,
        )
        self.services.metrics.paused.inc() if paused else self.services.metrics.paused.dec()
        self.services.set_paused(self.topic, self.partition, paused)

    async def drain(self) -> None:
        """Deliver what is buffered, then stop (on revoke and shutdown)."""
        self.draining = True
        for slot in self.slots:
            slot.wakeup.set()
        tasks = [slot.task for slot in self.slots if slot.task is not None]
        await asyncio.gather(*tasks, return_exceptions=True)

    async def abort(self) -> None:
        for slot in self.slots:
            if slot.task is not None:
                slot.task.cancel()
            for task in list(slot.in_flight):
                task.cancel()
        tasks = [slot.task for slot in self.slots if slot.task is not None]
        tasks += [task for slot in self.slots for task in slot.in_flight]
        await asyncio.gather(*tasks, return_exceptions=True)
        self.services.metrics.buffered.dec(self.buffered_records)
        self.services.metrics.buffered_bytes.dec(self.buffered_bytes)
        self.services.process_bytes[0] -= self.buffered_bytes
        if self.paused:
            self.services.metrics.paused.dec()


def _key_slot(key: bytes | None, slots: int) -> int:
    # crc32 rather than hash(): stable across processes, so a key keeps its slot.
    return zlib.crc32(key) % slots if key else 0
