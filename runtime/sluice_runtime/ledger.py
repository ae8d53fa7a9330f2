"""A partition's ledger: every record read is entered, every record leaves with one
``Outcome``, and the ledger alone decides which offset may be committed.

    read ──enter──▶ held ──filtered────────────────────────▶ FILTERED      ┐
                      ├──events_delivered (all its events)─▶ DELIVERED     ├─▶ released:
                      └──failed ──FailurePolicy.settle─────▶ DEAD_LETTERED │   offset may
                                    (or waits: blocking)    DROPPED       ┘   move, room

The offset rule: the committable position is one past the longest prefix of read records
that all have an Outcome; records of an unordered or key-ordered lane end out of order, so
a later record's Outcome waits for the earlier ones. Nothing else stores offsets.

The ledger also bounds what its partition holds (``maxRecordsPerPartition`` and
``maxBytesPerPartition``): it pauses the partition when full and resumes it at half, and
it keeps the process-wide count (``ProcessBuffer``) in step.
"""

from __future__ import annotations

import logging
import time
from collections import deque

from sluice_runtime.backpressure import ProcessBuffer
from sluice_runtime.metrics import Metrics
from sluice_runtime.records import Deliverable, Outcome, PartitionControl, Record

log = logging.getLogger("sluice.lane")
trace = logging.getLogger("sluice.trace")


class OffsetTracker:
    """Which offset of a partition may be committed: one past the longest prefix of
    registered offsets that are all acknowledged (acknowledged in any order)."""

    def __init__(self) -> None:
        self._order: list[int] = []  # registered offsets; those before _head are released
        self._head = 0
        self._acked: set[int] = set()  # acknowledged past a gap
        self._next: int | None = None  # the next offset to commit (Kafka's convention)

    def __len__(self) -> int:
        """Records read and not yet acknowledged-in-prefix."""
        return len(self._order) - self._head

    def register(self, offset: int) -> None:
        self._order.append(offset)

    def register_all(self, offsets: list[int]) -> None:
        self._order.extend(offsets)

    def ack(self, offsets: list[int]) -> int | None:
        """Acknowledge records; returns the new committable position when it moved."""
        if not offsets:
            return None
        order, head = self._order, self._head
        if not self._acked and order[head : head + len(offsets)] == offsets:
            # The common case (an ordered lane): exactly the next offsets, compared in C.
            head += len(offsets)
            self._next = offsets[-1] + 1
        else:
            acked = self._acked
            acked.update(offsets)
            start, end = head, len(order)
            while head < end and order[head] in acked:
                acked.discard(order[head])
                head += 1
            if head == start:
                return None
            self._next = order[head - 1] + 1
        if head > 4096 and head * 2 > len(order):
            del order[:head]  # released offsets go in bulk, not one by one
            head = 0
        self._head = head
        return self._next

    @property
    def committable(self) -> int | None:
        return self._next

    @property
    def first_pending(self) -> int | None:
        """The oldest offset read and not yet acknowledged-in-prefix."""
        order, head = self._order, self._head
        return order[head] if head < len(order) else None  # those before _head are released


class PartitionLedger:
    def __init__(
        self,
        topic: str,
        partition: int,
        control: PartitionControl,
        process: ProcessBuffer,
        metrics: Metrics,
        *,
        max_records: int,
        max_bytes: int,
        trace_records: bool = False,
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.control = control
        self.process = process
        self.metrics = metrics
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.trace_records = trace_records
        self.offsets = OffsetTracker()
        self.fanned_out: dict[int, int] = {}  # offset -> its events not yet delivered
        # Offsets of fanned-out records that failed while some of their events were still
        # to come, with how many: those events no longer count, and the entry goes with
        # the last of them (so the map holds only what is in flight).
        self.failed: dict[int, int] = {}
        self.held_records = 0
        self.held_bytes = 0
        self.paused = False
        # (first offset, its Kafka timestamp in ms) of each group entered: the age of the
        # oldest record not yet settled, for the health report, at one entry per poll.
        self._entered: deque[tuple[int, int]] = deque()
        self._committed = metrics.committed.labels(topic=topic, partition=str(partition))

    # Records come in.

    def enter(self, records: list[Record]) -> None:
        """Records were read (in offset order) and handed to this partition's lane."""
        if records:
            self._entered.append((records[0].offset, records[0].timestamp))
        self.offsets.register_all([record.offset for record in records])
        size = sum([record.size for record in records])
        self.held_records += len(records)
        self.held_bytes += size
        self.process.add(len(records), size)
        if not self.paused and (
            self.held_records >= self.max_records or self.held_bytes >= self.max_bytes
        ):
            self._pause(True)

    def expect_events(self, record: Record, count: int) -> None:
        """The record fanned out to ``count`` events: it is delivered after the last."""
        self.fanned_out[record.offset] = count

    def oldest_held_timestamp(self) -> int | None:
        """The Kafka timestamp (ms) of the oldest record held without an Outcome, None when
        there is none. Of its poll group's first record: older by at most one poll."""
        first = self.offsets.first_pending
        entered = self._entered
        if first is None:
            entered.clear()
            return None
        while len(entered) > 1 and entered[1][0] <= first:
            entered.popleft()
        return entered[0][1] if entered else None

    # Records leave, each with its Outcome.

    def filtered(self, records: list[Record]) -> None:
        if not records:
            return
        self.metrics.filtered.inc(len(records))
        if self.trace_records:
            for record in records:
                trace.info("filtered", extra={"record": record.event_id})
        self._release(records)

    def events_delivered(self, events: list[Deliverable]) -> None:
        """The function accepted these events; records whose every event it accepted are
        DELIVERED."""
        self.metrics.delivered.inc(len(events))
        if self.trace_records:
            for event in events:
                trace.info("delivered", extra={"record": event.event_id})
        fanned_out, failed = self.fanned_out, self.failed
        if not fanned_out and not failed:  # the common case: one event per record
            self._release([event.record for event in events])
            return
        done: list[Record] = []
        for event in events:
            offset = event.record.offset
            if offset in failed:
                self._event_of_failed_record(offset)  # the record failed as a whole already
                continue
            left = fanned_out.get(offset, 1) - 1
            if left > 0:
                fanned_out[offset] = left
                continue
            fanned_out.pop(offset, None)
            done.append(event.record)
        self._release(done)

    def failed_for_good(self, record: Record) -> bool:
        """The record (or one of its events) failed. The first time, True: the record
        takes the failure path, whose Outcome comes back through ``settled``, and its other
        events no longer make it delivered. A later failure of another of its events is
        False: the record fails once, however many of its events fail, in however many
        batches."""
        offset = record.offset
        if offset in self.failed:
            self._event_of_failed_record(offset)
            return False
        others = self.fanned_out.pop(offset, 1) - 1
        if others > 0:
            self.failed[offset] = others
        return True

    def is_failed(self, offset: int) -> bool:
        """Whether the record at ``offset`` failed while some of its events were to come."""
        return offset in self.failed

    def events_not_sent(self, events: list[Deliverable]) -> None:
        """Events of failed records, left out of a batch: their record has its Outcome."""
        for event in events:
            self._event_of_failed_record(event.record.offset)

    def _event_of_failed_record(self, offset: int) -> None:
        left = self.failed[offset] - 1
        if left > 0:
            self.failed[offset] = left
        else:
            del self.failed[offset]

    def settled(self, record: Record, outcome: Outcome) -> None:
        """A failed record was dead-lettered or dropped."""
        if self.trace_records:
            trace.info(outcome.value, extra={"record": record.event_id})
        self._release([record])

    # Bookkeeping when records leave.

    def _release(self, records: list[Record]) -> None:
        """Records have an Outcome: free their room and move the committable offset.
        Works per group so the cost per record stays small."""
        if not records:
            return
        count = len(records)
        size = sum([record.size for record in records])
        self.held_records -= count
        self.held_bytes -= size
        self.process.remove(count, size)
        # End-to-end latency is sampled (about 4 records per group): observing a histogram
        # costs more than everything else done per record.
        now = time.time()
        for record in records[:: max(1, count // 4)]:
            self.metrics.end_to_end.observe(max(0.0, now - record.timestamp / 1000))
        self._acknowledge(records)
        if (
            self.paused
            and self.held_records <= self.max_records // 2
            and self.held_bytes <= self.max_bytes // 2
        ):
            self._pause(False)

    def _acknowledge(self, records: list[Record]) -> None:
        """Records have an Outcome: the committable offset may move. (In queue mode each
        record is acknowledged alone instead: ``share_source.AcknowledgingLedger``.)"""
        moved = self.offsets.ack([record.offset for record in records])
        if moved is not None:
            self.control.store(self.topic, self.partition, moved)
            self._committed.set(moved)

    def discard(self) -> None:
        """The lane was aborted: what it held will be read again by the partition's next
        owner, so it no longer counts against the process."""
        self.process.remove(self.held_records, self.held_bytes)
        self.held_records = self.held_bytes = 0

    def _pause(self, paused: bool) -> None:
        self.paused = paused
        log.info(
            "%s partition %s-%d (%d records, %d bytes buffered)",
            "Paused" if paused else "Resumed",
            self.topic,
            self.partition,
            self.held_records,
            self.held_bytes,
        )
        self.metrics.paused.inc() if paused else self.metrics.paused.dec()
        self.control.set_paused(self.topic, self.partition, paused)

    def forget_pause(self) -> None:
        """The lane is going away; the source resumes the partition as it lets it go."""
        if self.paused:
            self.paused = False
            self.metrics.paused.dec()
