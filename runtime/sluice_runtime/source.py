"""The Kafka side: one consumer in the group, polled on its own thread.

librdkafka's calls block, so the consumer lives on a thread that hands records to the event
loop. Rebalance callbacks run on that thread too; a revoke waits (bounded) until the lanes
of the revoked partitions have drained and committed, so their records are not delivered
twice by the next owner. Offsets are stored only by the lanes (``enable.auto.offset.store``
off) and committed periodically by librdkafka, and synchronously on revoke and close.

The consumer keeps polling while partitions are paused, so a slow function never costs the
group membership (``max.poll.interval.ms`` is about poll calls, not deliveries).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Protocol

from confluent_kafka import OFFSET_INVALID, Consumer, KafkaException, Message, TopicPartition

from sluice_runtime.config import Connector, KafkaAuth
from sluice_runtime.contract import KAFKA_AUTH_ENV, PROCESS_INDEX_ENV
from sluice_runtime.records import Record

log = logging.getLogger("sluice.source")

RebalanceCallback = Callable[[Consumer, list[TopicPartition]], None]

POLL_BATCH = 2000
THROTTLED_POLL = 0.1  # seconds between the single records taken while the process is full
LAG_INTERVAL = 5.0


def kafka_auth_settings(auth: KafkaAuth | None) -> dict[str, str]:
    if auth is None:
        return {}
    settings: dict[str, str] = {"security.protocol": auth.security_protocol}
    if auth.security_protocol.startswith("SASL") and auth.sasl_mechanism:
        settings["sasl.mechanism"] = auth.sasl_mechanism
    for key, env in KAFKA_AUTH_ENV.items():
        if os.environ.get(env):
            settings[key] = os.environ[env]
    return settings


def consumer_client_id(index: int) -> str:
    """The client id of a process's consumer ``index``: the pod, the runtime process when
    the pod runs several, the consumer (the broker's logs and quotas tell them apart)."""
    process = os.environ.get(PROCESS_INDEX_ENV)
    within = f"p{process}-{index}" if process is not None else str(index)
    return f"sluice-{os.environ.get('HOSTNAME', 'local')}-{within}"


def consumer_settings(connector: Connector, client_id: str) -> dict[str, Any]:
    kafka = connector.spec.source.kafka
    return {
        "bootstrap.servers": ",".join(kafka.bootstrap_servers),
        "group.id": connector.consumer_group,
        "client.id": client_id,
        "auto.offset.reset": kafka.initial_offset,
        "partition.assignment.strategy": "cooperative-sticky",
        "enable.auto.commit": True,
        "enable.auto.offset.store": False,
        "auto.commit.interval.ms": 1000,
        # The default 1 s backoff after the local queue fills stalls a busy consumer.
        "fetch.queue.backoff.ms": 10,
        "fetch.wait.max.ms": 100,
        # Bound what librdkafka prefetches: the lanes' own buffers are what should fill.
        "queued.max.messages.kbytes": 8192,
        "fetch.max.bytes": 8 * 2**20,
        "session.timeout.ms": 45000,
        "max.poll.interval.ms": 300000,
        "enable.partition.eof": False,
        **kafka_auth_settings(kafka.auth),
    }


class SourceListener(Protocol):
    """What a reader tells the runtime; every call arrives on the event loop's thread."""

    def records_read(
        self, reader: KafkaReader, groups: dict[tuple[str, int], list[Record]]
    ) -> None:
        """Records read, grouped by (topic, partition), each group in offset order."""

    def assigned(self, reader: KafkaReader, partitions: list[tuple[str, int]]) -> None:
        """The group gave the reader these partitions."""

    async def revoked(self, reader: KafkaReader, partitions: list[tuple[str, int]]) -> None:
        """The partitions go to another member: finish them (bounded) before returning;
        the reader then commits what was stored and lets them go."""

    async def lost(self, reader: KafkaReader, partitions: list[tuple[str, int]]) -> None:
        """The partitions are gone already (session timeout): drop their work."""

    def lag(self, topic: str, partition: int, lag: int) -> None:
        """Records behind the end of a partition, every few seconds."""

    def failed(self, error: BaseException) -> None:
        """The reader stopped on an unexpected error; the runtime must stop."""


class KafkaReader:
    """One group member, polled on its own thread. Implements ``PartitionControl``."""

    def __init__(
        self,
        connector: Connector,
        index: int,
        loop: asyncio.AbstractEventLoop,
        listener: SourceListener,
        revoke_timeout: float,
    ) -> None:
        self.connector = connector
        self.index = index
        self.loop = loop
        self.listener = listener
        self.revoke_timeout = revoke_timeout
        client_id = consumer_client_id(index)
        self.consumer = Consumer(consumer_settings(connector, client_id), logger=log)
        self.stored: dict[tuple[str, int], int] = {}
        self.assigned: set[tuple[str, int]] = set()
        self.unread: set[tuple[str, int]] = set()  # assigned, no record read since
        # Where a partition assigned to a group reading from latest starts at the earliest
        # (its end just before it was assigned): see _store_start_positions.
        self._start_floor: dict[tuple[str, int], int] = {}
        self._from_latest = connector.spec.source.kafka.initial_offset == "latest"
        self._to_store: dict[tuple[str, int], int] = {}
        self._commands: deque[tuple[str, int, bool]] = deque()
        self._stop = threading.Event()
        self._reading = threading.Event()  # cleared while the process is full
        self._reading.set()
        self._thread = threading.Thread(target=self._run, name=f"kafka-{index}", daemon=True)
        self.closed = threading.Event()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop polling, commit what was stored and leave the group (returns at once)."""
        self._stop.set()

    # Called from the loop thread. librdkafka calls made there while this consumer's thread
    # sits in consume() deadlock on the GIL, so they are handed over and run by the poll
    # thread between two consume() calls (within 100 ms).
    def store(self, topic: str, partition: int, next_offset: int) -> None:
        self.stored[(topic, partition)] = next_offset
        self._to_store[(topic, partition)] = next_offset

    def set_paused(self, topic: str, partition: int, paused: bool) -> None:
        self._commands.append((topic, partition, paused))

    def set_reading(self, reading: bool) -> None:
        """Whether to take records at full speed (see sluice_runtime.backpressure)."""
        self._reading.set() if reading else self._reading.clear()

    def _apply_handovers(self) -> None:
        while self._commands:
            topic, partition, paused = self._commands.popleft()
            if (topic, partition) not in self.assigned:
                continue
            tp = [TopicPartition(topic, partition)]
            try:
                self.consumer.pause(tp) if paused else self.consumer.resume(tp)
            except KafkaException as error:
                log.debug("Could not (un)pause %s-%d: %s", topic, partition, error)
        if self._to_store:
            pending, self._to_store = self._to_store, {}
            offsets = [
                TopicPartition(t, p, o) for (t, p), o in pending.items() if (t, p) in self.assigned
            ]
            if offsets:
                try:
                    self.consumer.store_offsets(offsets=offsets)
                except KafkaException as error:
                    # Revoked meanwhile; the new owner re-reads from the last commit.
                    log.debug("Could not store offsets: %s", error)

    def _run(self) -> None:
        kafka = self.connector.spec.source.kafka
        self.consumer.subscribe(
            kafka.topics,
            on_assign=self._guarded(self._assigned),
            on_revoke=self._guarded(self._revoked),
            on_lost=self._guarded(self._lost),
        )
        next_lag = time.monotonic() + LAG_INTERVAL
        try:
            while not self._stop.is_set():
                self._apply_handovers()
                try:
                    messages = self._next_messages() if self._reading.is_set() else self._trickle()
                except KafkaException as error:
                    log.error("Kafka consume failed: %s", error)
                    time.sleep(1)
                    continue
                except Exception as error:
                    # A bug (a rebalance callback's is re-raised here): stop the runtime
                    # rather than go on without a consumer while looking alive.
                    self._fail(error)
                    return
                if messages:
                    groups = records_by_partition(messages)
                    if groups:
                        if self.unread:
                            self.unread.difference_update(groups)
                        self._hand_over(groups)
                if time.monotonic() >= next_lag:
                    next_lag = time.monotonic() + LAG_INTERVAL
                    self._report_lag()
                    if self.unread:
                        self._store_start_positions()
        finally:
            self._apply_handovers()
            self._commit(list(self.assigned))
            try:
                self.consumer.close()  # leaves the group, which rebalances at once
            except KafkaException as error:
                log.warning("Kafka consumer close failed: %s", error)
            self.closed.set()

    def _hand_over(self, groups: dict[tuple[str, int], list[Record]]) -> None:
        """Give records to the event loop and wait until it has taken them.

        One batch in transit at a time: the process bound (sluice_runtime.backpressure) is
        decided when the loop takes records, so a poll thread that ran ahead would overshoot
        it by as many batches as it got ahead. The wait is short (taking records is cheap).
        """
        taken = threading.Event()

        def take() -> None:
            try:
                self.listener.records_read(self, groups)
            finally:
                taken.set()

        self.loop.call_soon_threadsafe(take)
        while not taken.wait(0.1) and not self._stop.is_set() and not self.loop.is_closed():
            pass

    def _next_messages(self) -> list[Message]:
        """What is ready now, or else wait up to 100 ms for the first record.

        consume(n, timeout) waits until n records or the timeout, which would hold a lone
        record back for the whole timeout; so take what is queued without waiting, and only
        block when nothing is.
        """
        messages = self.consumer.consume(POLL_BATCH, 0)
        if messages:
            return messages
        first = self.consumer.consume(1, 0.1)
        if not first:
            return first
        return first + self.consumer.consume(POLL_BATCH - 1, 0)

    def _trickle(self) -> list[Message]:
        """The process is full: wait (woken as soon as reading may go on), then take at most
        one record, so rebalances are still served and the group keeps this member."""
        if self._reading.wait(THROTTLED_POLL):
            return self._next_messages()
        return self.consumer.consume(1, 0)

    def _tuples(self, partitions: list[TopicPartition]) -> list[tuple[str, int]]:
        return [(tp.topic, tp.partition) for tp in partitions]

    def _fail(self, error: BaseException) -> None:
        log.critical("Kafka consumer %d failed: %r", self.index, error, exc_info=error)
        self.loop.call_soon_threadsafe(self.listener.failed, error)

    def _guarded(self, callback: RebalanceCallback) -> RebalanceCallback:
        """A rebalance callback that never raises: one that does makes consume() drop the
        messages it had gathered, some of them of partitions still owned. A failure stops
        the runtime instead (nothing past acknowledged records is committed)."""

        def guarded(consumer: Consumer, partitions: list[TopicPartition]) -> None:
            try:
                callback(consumer, partitions)
            except Exception as error:
                self._fail(error)

        return guarded

    def _assigned(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        tps = self._tuples(partitions)
        self.assigned.update(tps)
        if self._from_latest:
            self._note_start_floors(tps)
        log.info("Assigned partitions %s", ", ".join(f"{t}-{p}" for t, p in tps) or "none")
        self.loop.call_soon_threadsafe(self.listener.assigned, self, tps)

    def _revoked(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        tps = self._tuples(partitions)
        if not tps:
            return
        log.info("Revoking partitions %s", ", ".join(f"{t}-{p}" for t, p in tps))
        self._wait(self.listener.revoked(self, tps))
        self._apply_handovers()
        self._commit(tps)
        self._release(tps)

    def _lost(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        tps = self._tuples(partitions)
        log.warning(
            "Lost partitions %s; their in-flight records will be read again",
            ", ".join(f"{t}-{p}" for t, p in tps),
        )
        self._wait(self.listener.lost(self, tps))
        self._apply_handovers()
        self._release(tps)

    def _release(self, tps: list[tuple[str, int]]) -> None:
        """Let partitions go once their lanes are gone and what they handed over is applied:
        resume them (librdkafka keeps a pause through unassign and assign, and a lane made
        for them later would never know) and forget their offsets. An offset kept after a
        revoke would be committed again should the partition come back before this reader
        stores a new one (at the next revoke or at shutdown), winding the group back over
        what other members delivered meanwhile."""
        for tp in tps:
            self._to_store.pop(tp, None)
            self.stored.pop(tp, None)
        try:
            self.consumer.resume([TopicPartition(t, p) for t, p in tps])
        except KafkaException as error:
            log.debug("Could not resume released partitions: %s", error)
        self.assigned.difference_update(tps)
        self.unread.difference_update(tps)
        for tp in tps:
            self._start_floor.pop(tp, None)

    def _wait(self, coroutine: Coroutine[Any, Any, None]) -> None:
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            future.result(self.revoke_timeout + 5)
        except FutureTimeout:
            log.error("Lanes did not drain within %.0fs during a rebalance", self.revoke_timeout)

    def _commit(self, tps: list[tuple[str, int]]) -> None:
        offsets = [
            TopicPartition(t, p, self.stored[(t, p)]) for t, p in tps if (t, p) in self.stored
        ]
        if not offsets:
            return
        try:
            self.consumer.commit(offsets=offsets, asynchronous=False)
            log.info(
                "Committed %s", ", ".join(f"{o.topic}-{o.partition}@{o.offset}" for o in offsets)
            )
        except KafkaException as error:
            log.error("Synchronous commit failed: %s", error)

    def _note_start_floors(self, tps: list[tuple[str, int]]) -> None:
        """Called as partitions are assigned, before they are fetched: their end now is at
        or before where a group with no committed offset starts on them."""
        for topic, partition in tps:
            try:
                _low, high = self.consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=2, cached=False
                )
            except KafkaException as error:
                log.debug("No end offset for %s-%d: %s", topic, partition, error)
                continue
            if high is not None and high >= 0:
                self._start_floor[(topic, partition)] = high
                self.unread.add((topic, partition))

    def _store_start_positions(self) -> None:
        """Commit where the group starts on partitions it has no committed offset for and
        this reader has read nothing from.

        A new group with ``initialOffset: latest`` starts at the end when a member joins,
        and has no committed offset until a record is delivered: the operator sees it as
        not started and keeps a replica for it, which on a partition no record reaches would
        be forever. The end just before the partition was assigned is at or before that
        start, so committing it passes over nothing this reader should deliver (at worst a
        later member reads again the few records produced in between), and lets the lag
        count from there."""
        unread = [tp for tp in self.unread if tp not in self.stored and tp in self.assigned]
        self.unread.intersection_update(unread)
        if not unread:
            return
        try:
            committed = self.consumer.committed([TopicPartition(t, p) for t, p in unread], 5)
        except KafkaException as error:
            log.debug("Could not read the committed offsets: %s", error)
            return
        for offsets in committed:
            if offsets.error is not None:
                continue  # asked again next time
            where = (offsets.topic, offsets.partition)
            self.unread.discard(where)
            floor = self._start_floor.pop(where, None)
            if offsets.offset < 0 and floor is not None:
                self.store(*where, floor)

    def _report_lag(self) -> None:
        for topic, partition in list(self.assigned):
            try:
                _low, high = self.consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), cached=True
                )
            except KafkaException:
                continue
            position = self.stored.get((topic, partition))
            if high is None or high < 0 or position is None or position == OFFSET_INVALID:
                continue
            self.loop.call_soon_threadsafe(
                self.listener.lag, topic, partition, max(0, high - position)
            )


def records_from_messages(messages: list[Message]) -> list[Record]:
    return [record for group in records_by_partition(messages).values() for record in group]


def records_by_partition(messages: list[Message]) -> dict[tuple[str, int], list[Record]]:
    """Records of the messages, grouped by partition in read order (one pass: this runs
    for every record read, on the thread that shares the interpreter with the pipeline)."""
    groups: dict[tuple[str, int], list[Record]] = {}
    append = None
    last_topic, last_partition = None, None
    for message in messages:
        if message.error() is not None:
            log.warning("Kafka reported: %s", message.error())
            continue
        topic, partition, offset = message.topic(), message.partition(), message.offset()
        if topic is None or partition is None or offset is None:
            continue
        if partition != last_partition or topic != last_topic or append is None:
            # librdkafka returns runs of one partition: this runs once per run.
            last_topic, last_partition = topic, partition
            append = groups.setdefault((topic, partition), []).append
        append(
            Record(
                topic,
                partition,
                offset,
                message.timestamp()[1],
                message.key(),
                message.value(),
                message.headers(),  # type: ignore[arg-type]
            )
        )
    return groups
