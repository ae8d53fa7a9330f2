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
from dataclasses import dataclass

from sluice_runtime.backpressure import ProcessBuffer
from sluice_runtime.config import Connector
from sluice_runtime.deadletter import FailurePath
from sluice_runtime.delivery import Deliverer, Stopping
from sluice_runtime.envelope import Record
from sluice_runtime.metrics import Metrics
from sluice_runtime.offsets import OffsetTracker
from sluice_runtime.payload import Request
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
    buffer: ProcessBuffer  # the process-wide bound, shared by every lane
    trace_records: bool = False
    on_fatal: Callable[[BaseException], None] = lambda _error: None


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
            timeout = self.batcher.until_next(time.monotonic())
            if len(self.batcher) and (window.max_interval == 0 or timeout == 0):
                if len(self.in_flight) < self.concurrency:
                    await self._dispatch(self.batcher.flush("interval"))
                    continue
                # Due, but no room for another request: the batch keeps growing until a
                # delivery ends (which wakes this slot) rather than queue up half empty.
                timeout = None
            if self.pending:
                continue
            self.wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wakeup.wait(), timeout)

    async def _take_pending(self) -> None:
        """Process what is waiting and feed the window; deliver batches as they close."""
        lane = self.lane
        services = lane.services
        process, add, pending = services.processor, self.batcher.add, self.pending
        now = time.monotonic()
        filtered: list[Record] = []
        while pending:
            record = pending.popleft()
            processed = process(record)
            if type(processed) is list and len(processed) == 1:  # the common case, kept short
                for batch in add(Item(record, processed[0]), record.size, now):
                    await self._dispatch(batch)
                    now = time.monotonic()
                continue
            if isinstance(processed, RecordFailure):
                await lane.fail(record, processed)
                continue
            if not processed:
                filtered.append(record)
                continue
            lane.outstanding[record.offset] = len(processed)  # fan-out: ack after the last
            share = max(1, record.size // len(processed))
            for index, data in enumerate(processed):
                for batch in add(Item(record, data, index), share, now):
                    await self._dispatch(batch)
                    now = time.monotonic()
        if filtered:
            services.metrics.filtered.inc(len(filtered))
            if services.trace_records:
                for record in filtered:
                    trace.info("filtered", extra={"record": record.event_id})
            lane.finish_records(filtered)

    async def _dispatch(self, batch: Batch) -> None:
        """Start delivering a closed batch once fewer than ``concurrency`` are in flight.

        A batch that has to wait gets its request built first: the encoding overlaps the
        requests before it instead of delaying its own (order holds, since it is still sent
        only when its turn comes). The slot goes on reading records meanwhile.
        """
        services = self.lane.services
        services.metrics.batches_closed(batch.trigger).inc()
        services.metrics.batch_size.observe(len(batch.items))
        prepared = None
        prepare = services.deliverer.prepare
        if prepare is not None and len(self.in_flight) >= self.concurrency:
            prepared = prepare(batch.items)
        await self._wait_in_flight(self.concurrency - 1)
        task = asyncio.create_task(self._deliver(batch, prepared))
        self.in_flight.add(task)
        task.add_done_callback(self._delivery_ended)

    def _delivery_ended(self, task: asyncio.Task[None]) -> None:
        self.in_flight.discard(task)
        self.wakeup.set()  # a batch may be waiting for room (see run)
        error = None if task.cancelled() else task.exception()
        if error is not None:  # a bug, as for the slot itself (see Lane._slot_ended)
            self.lane._slot_ended(task)

    async def _wait_in_flight(self, at_most: int) -> None:
        while len(self.in_flight) > at_most:
            await asyncio.wait(self.in_flight, return_when=asyncio.FIRST_COMPLETED)

    async def _deliver(self, batch: Batch, prepared: Request | None) -> None:
        services = self.lane.services
        services.metrics.in_flight.inc()
        try:
            failures = await services.deliverer.deliver(batch.items, self._delivered, prepared)
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
        if services.trace_records:
            for item in items:
                trace.info("delivered", extra={"record": item.event_id})
        self.lane.events_done(items)


class Lane:
    def __init__(self, topic: str, partition: int, services: LaneServices) -> None:
        self.topic = topic
        self.partition = partition
        self.services = services
        delivery = services.connector.spec.delivery
        buffer = services.connector.spec.runtime.buffer
        self.max_records = buffer.max_records_per_partition
        self.max_bytes = buffer.max_bytes_per_partition
        self.tracker = OffsetTracker()
        self.outstanding: dict[int, int] = {}  # offset -> events not yet delivered
        self.failed_offsets: set[int] = set()
        self._committed_gauge = services.metrics.committed.labels(
            topic=topic, partition=str(partition)
        )
        self.buffered_records = 0
        self.buffered_bytes = 0
        self.paused = False
        self.draining = False
        if delivery.ordering == "key-ordered":
            self.slots = [Slot(self, 1) for _ in range(delivery.max_in_flight)]
        elif delivery.ordering == "unordered":
            self.slots = [Slot(self, delivery.max_in_flight)]
        else:
            self.slots = [Slot(self, 1)]

    def start(self) -> None:
        for slot in self.slots:
            slot.task = asyncio.create_task(slot.run(), name=f"lane-{self.topic}-{self.partition}")
            slot.task.add_done_callback(self._slot_ended)

    def _slot_ended(self, task: asyncio.Task[None]) -> None:
        error = None if task.cancelled() else task.exception()
        if error is None:
            return
        # A bug, not a bad record: stop the process (nothing past this lane's acknowledged
        # records is committed) rather than let the partition stall unnoticed.
        log.critical("Lane %s-%d failed: %r", self.topic, self.partition, error, exc_info=error)
        self.services.on_fatal(error)

    def feed(self, records: list[Record]) -> None:
        size = 0
        for record in records:
            self.tracker.register(record.offset)
            slots = self.slots
            slot = slots[0] if len(slots) == 1 else slots[_key_slot(record.key, len(slots))]
            slot.pending.append(record)
            size += record.size
        self.buffered_records += len(records)
        self.buffered_bytes += size
        self.services.buffer.add(len(records), size)
        for slot in self.slots:
            if slot.pending:
                slot.wakeup.set()
        if not self.paused and (
            self.buffered_records >= self.max_records or self.buffered_bytes >= self.max_bytes
        ):
            self._set_paused(True)

    def events_done(self, items: list[Item]) -> None:
        """Events went through; records whose every event did are finished."""
        outstanding, failed = self.outstanding, self.failed_offsets
        if not outstanding and not failed:
            self.finish_records([item.record for item in items])
            return
        done: list[Record] = []
        for item in items:
            offset = item.record.offset
            if offset in failed:
                continue  # the record was dead-lettered as a whole already
            left = outstanding.get(offset, 1) - 1
            if left > 0:
                outstanding[offset] = left
                continue
            outstanding.pop(offset, None)
            done.append(item.record)
        self.finish_records(done)

    def finish_records(self, records: list[Record]) -> None:
        """Records are delivered, filtered or dead-lettered: release them and move the
        committable offset. Works per group so the cost per record stays small."""
        if not records:
            return
        count = len(records)
        size = sum(record.size for record in records)
        self.buffered_records -= count
        self.buffered_bytes -= size
        self.services.buffer.remove(count, size)
        metrics = self.services.metrics
        # End-to-end latency is sampled (about 4 records per group): observing a histogram
        # costs more than everything else done per record.
        now = time.time()
        for record in records[:: max(1, count // 4)]:
            metrics.end_to_end.observe(max(0.0, now - record.timestamp / 1000))
        moved = self.tracker.ack([record.offset for record in records])
        if moved is not None:
            self.services.store_offset(self.topic, self.partition, moved)
            self._committed_gauge.set(moved)
        if (
            self.paused
            and self.buffered_records <= self.max_records // 2
            and self.buffered_bytes <= self.max_bytes // 2
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
        self.finish_records([record])

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
        self._forget_pause()

    async def abort(self) -> None:
        for slot in self.slots:
            if slot.task is not None:
                slot.task.cancel()
            for task in list(slot.in_flight):
                task.cancel()
        tasks = [slot.task for slot in self.slots if slot.task is not None]
        tasks += [task for slot in self.slots for task in slot.in_flight]
        await asyncio.gather(*tasks, return_exceptions=True)
        self.services.buffer.remove(self.buffered_records, self.buffered_bytes)
        self.buffered_records = self.buffered_bytes = 0
        self._forget_pause()

    def _forget_pause(self) -> None:
        """The lane is going away; the source resumes the partition as it lets it go."""
        if self.paused:
            self.paused = False
            self.services.metrics.paused.dec()


def _key_slot(key: bytes | None, slots: int) -> int:
    # crc32 rather than hash(): stable across processes, so a key keeps its slot.
    return zlib.crc32(key) % slots if key else 0
