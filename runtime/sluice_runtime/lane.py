"""A partition's lane: records → processors → window → delivery → outcomes.

    feed(records) ──▶ ledger.enter ──▶ stream(s) ──process──▶ [] ───────────▶ ledger.filtered
                                         │          └─▶ RecordFailure ─▶ fail ┐
                                         └─ window ──▶ Batch ──deliver──▶ ledger.events_delivered
                                                                └─▶ RecordFailure ─▶ fail ┘
    fail(record): ledger.failed_for_good ──▶ FailurePolicy.settle ──▶ ledger.settled

Each assigned partition gets one lane. Inside it, ``streams`` run concurrently; each is one
ordered stream of batches:

- ``ordered``: one stream, one batch in flight;
- ``unordered``: one stream, up to ``maxInFlight`` batches in flight;
- ``key-ordered``: ``maxInFlight`` streams chosen by key hash, each serial, so records with
  the same key stay in order while different keys run in parallel.

Every record's Outcome goes to the partition's ledger, which alone decides what may be
committed (see ``ledger.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import zlib
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sluice_runtime.backpressure import ProcessBuffer
from sluice_runtime.config import Buffer, Delivery, Window
from sluice_runtime.delivery import Deliverer
from sluice_runtime.failures import FailurePolicy
from sluice_runtime.ledger import PartitionLedger
from sluice_runtime.metrics import Metrics
from sluice_runtime.payload import Request
from sluice_runtime.processors import ChunkProcessor, Processed, Processor, pass_through
from sluice_runtime.records import (
    Batch,
    Deliverable,
    Event,
    PartitionControl,
    Record,
    RecordFailure,
    Stopping,
)
from sluice_runtime.window import Batcher

log = logging.getLogger("sluice.lane")
T = TypeVar("T")

UDF_CHUNK = 500  # records per round trip to the UDF's worker
PREPARE_AHEAD_MAX_BYTES = 1 << 20  # larger batches are encoded only when their turn comes


@dataclass
class LaneServices:
    """What every lane of a process shares, and the parts of the spec lanes act on."""

    window: Window
    delivery: Delivery
    buffer: Buffer
    processor: Processor | None  # exactly one of processor and chunk_processor is set
    deliverer: Deliverer
    failures: FailurePolicy
    metrics: Metrics
    control: PartitionControl  # the source that reads the partition
    process_buffer: ProcessBuffer  # the process-wide bound, shared by every lane
    trace_records: bool = False
    on_fatal: Callable[[BaseException], None] = lambda _error: None
    chunk_processor: ChunkProcessor | None = None  # replaces processor (a UDF's worker)


class Signal:
    """A flag a stream sleeps on, set by whoever has work for it; one sleeper at a time
    (only the stream's own task waits on its signals).

    One future per sleep, and a timer only when the sleep has a deadline: waiting with
    ``asyncio.wait_for(event.wait(), t)`` made a task, an event waiter and a timer every
    time a stream went idle, and ``asyncio.wait`` a waiter and a callback per task in
    flight; at one record per request dropping them saved 6 % of the runtime's CPU.
    """

    __slots__ = ("_is_set", "_waiter")

    def __init__(self) -> None:
        self._is_set = False
        self._waiter: asyncio.Future[None] | None = None

    def set(self) -> None:
        self._is_set = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def clear(self) -> None:
        self._is_set = False

    async def wait(self, seconds: float | None = None) -> None:
        """Until set (returns at once when it is), or ``seconds`` have passed."""
        if self._is_set:
            return
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = None if seconds is None else loop.call_later(seconds, _wake, waiter)
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class BatchStream:
    """One serial stream of batches inside a lane."""

    def __init__(self, lane: Lane, concurrency: int) -> None:
        window = lane.services.window
        self.lane = lane
        self.pending: deque[Record] = deque()
        self.batcher = Batcher(window.max_messages, window.max_bytes, window.max_interval)
        self.wakeup = Signal()  # records came, or a delivery ended
        self.room = Signal()  # a delivery ended
        self.in_flight: set[asyncio.Task[None]] = set()
        self.concurrency = concurrency
        self.task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        try:
            await self._run()
        except Stopping:
            # The runtime aborts while a record waits on the failure policy (a blocked
            # partition, an unwritable dead-letter topic): it is read again after restart.
            return

    async def _run(self) -> None:
        window = self.lane.services.window
        while True:
            await self._take_pending()
            if self.lane.handing_back:
                # Records not sent yet stay unacknowledged: the next owner reads them.
                self.pending.clear()
                if len(self.batcher):
                    self.batcher.flush("drain")
                await self._wait_in_flight(0)
                return
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
                # delivery ends (which wakes this stream) rather than queue up half empty.
                timeout = None
            if self.pending:
                continue
            self.wakeup.clear()
            await self.wakeup.wait(timeout)

    async def _take_pending(self) -> None:
        """Process what is waiting and feed the window; deliver batches as they close."""
        lane = self.lane
        process, chunked = lane.services.processor, lane.services.chunk_processor
        add, pending = self.batcher.add, self.pending
        filtered: list[Record] = []
        while pending and not lane.handing_back:
            if chunked is None:
                assert process is not None
                records = list(pending)
                pending.clear()
                if process is pass_through:
                    # No filter, no transform: each record is its own event (see Record).
                    for batch in self.batcher.add_records(records, time.monotonic()):
                        await self._dispatch(batch)
                    continue
                results: list[Processed] = [process(record) for record in records]
            else:  # a UDF in its worker process: a round trip per chunk, not per record
                count = min(len(pending), UDF_CHUNK)
                records = [pending.popleft() for _ in range(count)]
                results = await chunked(records)
            now = time.monotonic()
            # Runs of records that produced exactly one event each (the common case) go
            # into the window together, as records that pass through do.
            run: list[Event] = []
            sizes: list[int] = []
            for record, processed in zip(records, results, strict=True):
                if type(processed) is list and len(processed) == 1:
                    run.append(Event(record, processed[0]))
                    sizes.append(record.size)
                    continue
                if run:
                    for batch in self.batcher.add_all(run, sizes, now):
                        await self._dispatch(batch)
                    run, sizes = [], []
                    now = time.monotonic()
                if isinstance(processed, RecordFailure):
                    lane.ledger.filtered(filtered)  # acknowledged now: they need nothing more
                    filtered = []
                    retried = await self._closing_due_batches(
                        lane.processing_failed(record, processed)
                    )
                    now = time.monotonic()
                    if retried is None:
                        continue
                    produced = retried
                else:
                    produced = processed
                if not produced:
                    filtered.append(record)
                    continue
                lane.ledger.expect_events(record, len(produced))
                share = max(1, record.size // len(produced))
                for index, data in enumerate(produced):
                    for batch in add(Event(record, data, index), share, now):
                        await self._dispatch(batch)
                        now = time.monotonic()
            for batch in self.batcher.add_all(run, sizes, now):
                await self._dispatch(batch)
        lane.ledger.filtered(filtered)

    async def _closing_due_batches(self, failure_handled: Awaitable[T]) -> T:
        """Wait for a failed record's policy (its dead-letter write, or retries while the
        partition is held), which lasts as long as the dead-letter topic or the processing
        stays broken, and meanwhile send the open batch when its interval is due: the
        records before the failed one do not depend on it. Those after it wait, in order."""
        waiting = asyncio.ensure_future(failure_handled)
        try:
            while True:
                due = self.batcher.until_next(time.monotonic())
                await asyncio.wait({waiting}, timeout=due)
                if waiting.done():
                    return waiting.result()
                if len(self.batcher):
                    await self._dispatch(self.batcher.flush("interval"))
        finally:
            if not waiting.done():  # this stream was cancelled: so is the wait
                waiting.cancel()
                with contextlib.suppress(asyncio.CancelledError, Stopping):
                    await waiting

    async def _dispatch(self, batch: Batch) -> None:
        """Start delivering a closed batch once fewer than ``concurrency`` are in flight.

        A small batch that has to wait gets its request built first: the encoding overlaps
        the requests before it instead of delaying its own (order holds, since it is still
        sent only when its turn comes). The stream goes on reading records meanwhile. A
        large batch waits unencoded: its body would double what it holds for little gain.
        """
        services = self.lane.services
        if self.lane.handing_back:
            return  # not sent: unacknowledged, read again by the partition's next owner
        services.metrics.batches_closed(batch.trigger).inc()
        services.metrics.batch_size.observe(len(batch.events))
        prepared = None
        prepare = services.deliverer.prepare
        if (
            prepare is not None
            and len(self.in_flight) >= self.concurrency
            and batch.size <= PREPARE_AHEAD_MAX_BYTES
        ):
            # A batch that cannot be encoded is left to the send, which reports it.
            with contextlib.suppress(Exception):
                prepared = prepare(batch.events)
        await self._wait_in_flight(self.concurrency - 1)
        # The request body of a batch in flight is about as large as its records: it counts
        # against the process's byte bound until the delivery ends.
        services.process_buffer.add(0, batch.size)
        task = asyncio.create_task(self._deliver(batch, prepared))
        self.in_flight.add(task)
        task.add_done_callback(self._delivery_ended)

    def _delivery_ended(self, task: asyncio.Task[None]) -> None:
        self.in_flight.discard(task)
        self.wakeup.set()  # a batch may be waiting for room (see run)
        self.room.set()
        error = None if task.cancelled() else task.exception()
        if error is not None:  # a bug, as for the stream itself (see Lane._stream_ended)
            self.lane._stream_ended(task)

    async def _wait_in_flight(self, at_most: int) -> None:
        while len(self.in_flight) > at_most:
            self.room.clear()
            await self.room.wait()

    async def _deliver(self, batch: Batch, prepared: Request | None) -> None:
        lane = self.lane
        services = lane.services
        events = batch.events
        ledger = lane.ledger
        if ledger.failed:
            # Events of a record that failed in an earlier batch: the record went to the
            # failure path whole (a redrive sends all its events), so these are not sent.
            kept: list[Deliverable] = []
            gone: list[Deliverable] = []
            for event in events:
                (gone if ledger.is_failed(event.record.offset) else kept).append(event)
            if gone:
                ledger.events_not_sent(gone)
                events, prepared = kept, None  # the request was for the whole batch
        services.metrics.batches_in_flight += 1
        try:
            failures = (
                await services.deliverer.deliver(events, ledger.events_delivered, prepared)
                if events
                else []
            )
        except Stopping:
            return  # what was not acknowledged is read again after restart
        finally:
            services.metrics.batches_in_flight -= 1
            services.process_buffer.remove(0, batch.size)
        try:
            for event, failure in failures:
                await lane.fail(event.record, failure)  # once per record: see Lane.fail
        except Stopping:
            return  # the runtime aborts: the record is read again after restart


class Lane:
    def __init__(
        self, topic: str, partition: int, services: LaneServices, ledger: PartitionLedger
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.services = services
        self.ledger = ledger
        self.draining = False
        self.handing_back = False
        delivery = services.delivery
        if delivery.ordering == "key-ordered":
            self.streams = [BatchStream(self, 1) for _ in range(delivery.max_in_flight)]
        elif delivery.ordering == "unordered":
            self.streams = [BatchStream(self, delivery.max_in_flight)]
        else:
            self.streams = [BatchStream(self, 1)]

    @classmethod
    def create(cls, topic: str, partition: int, services: LaneServices) -> Lane:
        buffer = services.buffer
        ledger = PartitionLedger(
            topic,
            partition,
            services.control,
            services.process_buffer,
            services.metrics,
            max_records=buffer.max_records_per_partition,
            max_bytes=buffer.max_bytes_per_partition,
            trace_records=services.trace_records,
        )
        return cls(topic, partition, services, ledger)

    def start(self) -> None:
        for stream in self.streams:
            stream.task = asyncio.create_task(
                stream.run(), name=f"lane-{self.topic}-{self.partition}"
            )
            stream.task.add_done_callback(self._stream_ended)

    def _stream_ended(self, task: asyncio.Task[None]) -> None:
        error = None if task.cancelled() else task.exception()
        if error is None:
            return
        # A bug, not a bad record: stop the process (nothing past this lane's acknowledged
        # records is committed) rather than let the partition stall unnoticed.
        log.critical("Lane %s-%d failed: %r", self.topic, self.partition, error, exc_info=error)
        self.services.on_fatal(error)

    def feed(self, records: list[Record]) -> None:
        self.ledger.enter(records)
        streams = self.streams
        if len(streams) == 1:
            streams[0].pending.extend(records)
        else:
            for record in records:
                streams[_key_stream(record.key, len(streams))].pending.append(record)
        for stream in streams:
            if stream.pending:
                stream.wakeup.set()

    async def processing_failed(self, record: Record, failure: RecordFailure) -> list[Any] | None:
        """A record failed in decode, filter or transform. When the policy holds the
        partition, processing is tried again until it succeeds (what it produced is then
        delivered); otherwise the record takes the failure path (None)."""
        failures = self.services.failures
        if not failures.blocks:
            await self.fail(record, failure)
            return None
        process, chunked = self.services.processor, self.services.chunk_processor

        async def again() -> list[Any] | None:
            if chunked is None:
                assert process is not None
                processed = process(record)
            else:
                processed = (await chunked([record]))[0]
            return None if isinstance(processed, RecordFailure) else processed

        return await failures.hold(record.event_id, failure, again, record)

    async def fail(self, record: Record, failure: RecordFailure) -> None:
        """A record failed for good: the failure policy settles it (dead-letter or drop).
        Only its first failure does: a fanned-out record whose events fail in several
        batches is dead-lettered once and released once."""
        if not self.ledger.failed_for_good(record):
            return
        outcome = await self.services.failures.settle(record, failure)
        self.ledger.settled(record, outcome)

    async def drain(self) -> None:
        """Deliver what is buffered, then stop (on revoke and shutdown)."""
        self.draining = True
        for stream in self.streams:
            stream.wakeup.set()
        tasks = [stream.task for stream in self.streams if stream.task is not None]
        await asyncio.gather(*tasks, return_exceptions=True)
        self.ledger.forget_pause()

    async def hand_back(self) -> None:
        """Finish the batches in flight and give back what was not sent yet, unacknowledged
        (on revoke and shutdown): the partition's next owner reads it from the offset
        committed after this returns, so nothing is delivered twice.

        Delivering everything buffered instead (``drain``) held a rebalance for as long as
        a backlog took, up to the grace period, and then aborted the batches in flight:
        the function had taken them but they were not acknowledged, and came again."""
        self.handing_back = True
        await self.drain()
        self.ledger.discard()

    async def abort(self) -> None:
        for stream in self.streams:
            if stream.task is not None:
                stream.task.cancel()
            for task in list(stream.in_flight):
                task.cancel()
        tasks = [stream.task for stream in self.streams if stream.task is not None]
        tasks += [task for stream in self.streams for task in stream.in_flight]
        await asyncio.gather(*tasks, return_exceptions=True)
        self.ledger.discard()
        self.ledger.forget_pause()


def _key_stream(key: bytes | None, streams: int) -> int:
    # crc32 rather than hash(): stable across processes, so a key keeps its stream.
    return zlib.crc32(key) % streams if key else 0
