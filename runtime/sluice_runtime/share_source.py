"""Queue mode: one member of a Kafka share group (KIP-932), polled on its own thread.

In a share group every member may read every partition: the broker hands out records,
each *acquired* by one member for the group's lock time (``share.record.lock.duration.ms``,
30 s by default), and the member settles each record alone: ACCEPT (done), RELEASE (give it
to anyone again) or REJECT. A record's *delivery count* grows with each acquisition; once it
reaches the broker's ``group.share.delivery.count.limit`` (5 by default) a record that is
released, or whose lock expires, is archived by the broker: nobody sees it again.

How that keeps the runtime's at-least-once contract (docs/delivery.md, queue mode):

    poll (acquires ≤ max.poll.records) ──▶ one Lane per partition, fed the acquired records
        │ within the budget (lock time minus a margin)       │ Outcome of each record
        ▼                                                    ▼
    ACCEPT   the record has an Outcome: delivered, filtered, dead-lettered (DLQ write
             confirmed), or dropped (errorTolerance all without a DLQ)
    RELEASE  no Outcome within the budget (retries still running, the function too slow,
             shutdown): the broker delivers it again, maybe to another member
    last delivery (count = limit) without an Outcome: the failure path (DLQ, then ACCEPT)
             instead of a RELEASE that the broker would turn into a silent archive

The client (confluent-kafka's ShareConsumer, preview) runs in explicit acknowledgement mode:
it accepts nothing on its own, releases what is unacknowledged when it closes, and refuses to
poll again before every record of the previous poll is acknowledged. So a member works on
one poll at a time, and the poll size (``max.poll.records``) is a few windows' worth. The
lock cannot be renewed by this client: work that does not finish within the budget is
aborted and released, never accepted.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Coroutine
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, Protocol

from confluent_kafka import (
    AcknowledgeType,
    IllegalStateException,
    KafkaException,
    Message,
    ShareConsumer,
    TopicPartition,
)
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)

from sluice_runtime.backpressure import ProcessBuffer
from sluice_runtime.config import Connector
from sluice_runtime.failures import FailurePolicy
from sluice_runtime.lane import Lane, LaneServices
from sluice_runtime.ledger import PartitionLedger
from sluice_runtime.metrics import Metrics
from sluice_runtime.records import Outcome, PartitionControl, Record, RecordFailure, Stopping
from sluice_runtime.source import consumer_client_id, kafka_auth_settings

log = logging.getLogger("sluice.share")

LOCK_CONFIG = "share.record.lock.duration.ms"
RESET_CONFIG = "share.auto.offset.reset"
DELIVERY_LIMIT_CONFIG = "group.share.delivery.count.limit"
SMALLEST_DELIVERY_LIMIT = 2  # the broker refuses lower limits; assumed when it cannot be read
SMALLEST_LOCK = 15.0  # group.share.min.record.lock.duration.ms's default; assumed likewise
POLL_TIMEOUT = 0.5
POLL_WINDOWS = 2  # windows of maxInFlight batches acquired per poll

RecordKey = tuple[str, int, int]  # topic, partition, offset


@dataclass(frozen=True)
class ShareGroupFacts:
    """What the broker decides for the share group and the runtime must respect."""

    lock_seconds: float
    delivery_limit: int

    @property
    def budget(self) -> float:
        """Seconds a poll's records may be worked on: the lock, less a margin for the last
        delivery's dead-letter write and the acknowledgement's way to the broker."""
        return max(1.0, self.lock_seconds - max(3.0, self.lock_seconds / 5))


def share_consumer_settings(connector: Connector, client_id: str) -> dict[str, Any]:
    spec = connector.spec
    kafka = spec.source.kafka
    return {
        "bootstrap.servers": ",".join(kafka.bootstrap_servers),
        "group.id": connector.share_group,
        "client.id": client_id,
        "share.acknowledgement.mode": "explicit",
        # Best effort: the broker hands out whole producer batches.
        "max.poll.records": POLL_WINDOWS * spec.delivery.max_in_flight * spec.window.max_messages,
        **kafka_auth_settings(kafka.auth),
    }


def prepare_share_group(connector: Connector, timeout: float = 10.0) -> ShareGroupFacts:
    """Make the share group start where ``initialOffset`` says (share groups start at the
    latest offset unless told otherwise, and only a group config tells them), and read the
    lock time and the delivery count limit. Raises when the start cannot be set: reading
    from the latest offset when the spec says earliest would skip records silently."""
    kafka = connector.spec.source.kafka
    admin = AdminClient(
        {"bootstrap.servers": ",".join(kafka.bootstrap_servers), **kafka_auth_settings(kafka.auth)}
    )
    group = connector.share_group
    resource = ConfigResource(ResourceType.GROUP, group)
    configs = admin.describe_configs([resource], request_timeout=timeout)[resource].result(timeout)
    reset = configs[RESET_CONFIG].value if RESET_CONFIG in configs else None
    if reset != kafka.initial_offset:
        change = ConfigResource(
            ResourceType.GROUP,
            group,
            incremental_configs=[
                ConfigEntry(
                    RESET_CONFIG,
                    kafka.initial_offset,
                    incremental_operation=AlterConfigOpType.SET,
                )
            ],
        )
        admin.incremental_alter_configs([change], request_timeout=timeout)[change].result(timeout)
        log.info("Share group %s starts at the %s offset", group, kafka.initial_offset)
    lock = SMALLEST_LOCK
    if LOCK_CONFIG in configs and configs[LOCK_CONFIG].value:
        lock = int(configs[LOCK_CONFIG].value) / 1000
    return ShareGroupFacts(lock, _delivery_limit(admin, timeout))


def _delivery_limit(admin: AdminClient, timeout: float) -> int:
    """The broker's delivery count limit; the smallest one allowed when it cannot be read
    (a lower guess only dead-letters sooner, a higher one would let the broker archive)."""
    try:
        brokers = admin.list_topics(timeout=timeout).brokers
        broker = ConfigResource(ResourceType.BROKER, str(min(brokers)))
        configs = admin.describe_configs([broker], request_timeout=timeout)[broker].result(timeout)
        return int(configs[DELIVERY_LIMIT_CONFIG].value)
    except Exception as error:  # no DescribeConfigs permission on the cluster, say
        log.warning(
            "Could not read %s (%s); assuming %d",
            DELIVERY_LIMIT_CONFIG,
            error,
            SMALLEST_DELIVERY_LIMIT,
        )
        return SMALLEST_DELIVERY_LIMIT


class QueueListener(Protocol):
    """What a share reader asks of the runtime; called on the event loop's thread."""

    async def acquired(
        self, reader: ShareReader, groups: dict[tuple[str, int], list[Record]], budget: float
    ) -> set[RecordKey]:
        """Work on acquired records for at most ``budget`` seconds; returns the records that
        have an Outcome (they are accepted, every other one is released)."""

    def failed(self, error: BaseException) -> None:
        """The reader stopped on an unexpected error; the runtime must stop."""


class ShareReader:
    """One share-group member, polled on its own thread (the client is not thread-safe:
    every call into it is made here). Implements ``PartitionControl`` for the lanes, which
    have nothing to tell it: records are acknowledged one by one, and a poll is bounded."""

    def __init__(
        self,
        connector: Connector,
        index: int,
        loop: asyncio.AbstractEventLoop,
        listener: QueueListener,
    ) -> None:
        self.connector = connector
        self.index = index
        self.loop = loop
        self.listener = listener
        self.facts: ShareGroupFacts | None = None
        self.delivery_counts: dict[RecordKey, int] = {}  # of the records being worked on
        self.client_id = consumer_client_id(index)
        self._stop = threading.Event()
        self._reading = threading.Event()
        self._reading.set()
        self._thread = threading.Thread(target=self._run, name=f"share-{index}", daemon=True)
        self.closed = threading.Event()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop polling once the current poll is settled, then leave the group."""
        self._stop.set()

    def set_reading(self, reading: bool) -> None:
        self._reading.set() if reading else self._reading.clear()

    # PartitionControl: nothing to do (see the class docstring).
    def store(self, topic: str, partition: int, next_offset: int) -> None:
        pass

    def set_paused(self, topic: str, partition: int, paused: bool) -> None:
        pass

    def _run(self) -> None:
        try:
            self.facts = prepare_share_group(self.connector)
            consumer = ShareConsumer(share_consumer_settings(self.connector, self.client_id))
            consumer.subscribe(self.connector.spec.source.kafka.topics)
            consumer.set_acknowledgement_commit_callback(self._acknowledgements_sent)
        except Exception as error:
            self._fail(error)
            self.closed.set()
            return
        log.info(
            "Joined share group %s (lock %.0fs, work budget %.0fs, delivery limit %d)",
            self.connector.share_group,
            self.facts.lock_seconds,
            self.facts.budget,
            self.facts.delivery_limit,
        )
        try:
            while not self._stop.is_set():
                if not self._reading.wait(POLL_TIMEOUT):
                    continue  # the process is full: acquire nothing it cannot work on
                try:
                    messages = consumer.poll(POLL_TIMEOUT)
                except KafkaException as error:
                    log.error("Share poll failed: %s", error)
                    time.sleep(1)
                    continue
                if messages:
                    self._work_on(consumer, list(messages))
        except Exception as error:  # a bug: stop the runtime rather than look alive
            self._fail(error)
        finally:
            try:
                consumer.close()  # sends the last acknowledgements, releases the rest
            except KafkaException as error:
                log.warning("Share consumer close failed: %s", error)
            self.closed.set()

    def _work_on(self, consumer: ShareConsumer, messages: list[Message]) -> None:
        assert self.facts is not None
        acquired_at = time.monotonic()
        groups: dict[tuple[str, int], list[Record]] = {}
        for message in messages:
            error = message.error()
            topic, partition, offset = message.topic(), message.partition(), message.offset()
            if error is not None or topic is None or partition is None or offset is None:
                if error is not None:
                    log.warning("Kafka reported: %s", error)
                continue
            self.delivery_counts[(topic, partition, offset)] = message.delivery_count() or 1
            groups.setdefault((topic, partition), []).append(
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
        settled: set[RecordKey] = set()
        if groups:
            budget = self.facts.budget - (time.monotonic() - acquired_at)
            settled = self._wait(self.listener.acquired(self, groups, budget), budget + 10)
        released = 0
        for message in messages:
            key = (message.topic(), message.partition(), message.offset())
            if message.error() is not None:
                continue
            accept = key in settled
            released += not accept
            # Every record of a poll must be acknowledged before the next poll.
            try:
                consumer.acknowledge(
                    message, AcknowledgeType.ACCEPT if accept else AcknowledgeType.RELEASE
                )
            except (IllegalStateException, KafkaException) as error:
                # No longer acquired by this member: the broker delivers it again.
                log.warning("Could not acknowledge %s-%s@%s: %s", *key, error)
        self.delivery_counts.clear()
        if released:
            log.info("Released %d of %d acquired records for redelivery", released, len(messages))
        try:
            consumer.commit_async()  # now, not with the next poll: fewer duplicates on a crash
        except KafkaException as error:
            log.warning("Could not send acknowledgements: %s", error)

    def _acknowledgements_sent(
        self, offsets: dict[TopicPartition, set[int]], error: KafkaException | None
    ) -> None:
        if error is not None:
            # The lock expired first (the broker gives the record to someone again), or
            # the broker is unreachable: either way the record is delivered again.
            log.warning("Acknowledgements refused by the broker: %s", error)

    def _wait(
        self, coroutine: Coroutine[Any, Any, set[RecordKey]], timeout: float
    ) -> set[RecordKey]:
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            return future.result(timeout)
        except FutureTimeout:
            future.cancel()
            log.error("Acquired records were not settled in %.0fs; releasing them", timeout)
        except Exception as error:
            log.error("Working on acquired records failed (%r); releasing them", error)
        return set()

    def _fail(self, error: BaseException) -> None:
        log.critical("Share consumer %d failed: %r", self.index, error, exc_info=error)
        self.loop.call_soon_threadsafe(self.listener.failed, error)


class AcknowledgingLedger(PartitionLedger):
    """A ledger for one poll's records of one partition: records with an Outcome are
    remembered one by one (to be accepted), as there is no offset order to commit."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.with_outcome: set[int] = set()

    def _acknowledge(self, records: list[Record]) -> None:
        self.with_outcome.update(record.offset for record in records)


async def work_on_acquired(
    groups: dict[tuple[str, int], list[Record]],
    services: LaneServices,
    delivery_counts: dict[RecordKey, int],
    facts: ShareGroupFacts,
    budget: float,
) -> set[RecordKey]:
    """Run acquired records through a lane per partition for at most ``budget`` seconds;
    returns the records that have an Outcome.

    A record without one on its last delivery takes the failure path (dead-lettered, or
    dropped without a DLQ) rather than being released: the broker would archive it, with no
    trace. The time that takes comes out of the margin ``ShareGroupFacts.budget`` keeps.
    """
    started = time.monotonic()
    lanes: list[tuple[Lane, AcknowledgingLedger]] = []
    for (topic, partition), records in groups.items():
        ledger = _ledger(topic, partition, services)
        lane = Lane(topic, partition, services, ledger)
        lanes.append((lane, ledger))
        lane.start()
        lane.feed(records)
    drains = asyncio.gather(*(lane.drain() for lane, _ in lanes))
    try:
        await asyncio.wait_for(drains, max(0.0, budget))
    except TimeoutError:
        await asyncio.gather(*(lane.abort() for lane, _ in lanes))
    settled: set[RecordKey] = set()
    last_deliveries: list[Record] = []
    for (lane, ledger), records in zip(lanes, groups.values(), strict=True):
        for record in records:
            if record.offset in ledger.with_outcome:
                settled.add((lane.topic, lane.partition, record.offset))
            elif delivery_counts.get(_key(record), 1) >= facts.delivery_limit:
                last_deliveries.append(record)
    if last_deliveries:
        remaining = facts.lock_seconds - (time.monotonic() - started) - 1
        settled |= await _settle_last_deliveries(last_deliveries, services.failures, remaining)
    return settled


async def _settle_last_deliveries(
    records: list[Record], failures: FailurePolicy, within: float
) -> set[RecordKey]:
    failure = RecordFailure(
        "deliver",
        "not delivered within the share group's acquisition lock on its last delivery",
    )

    async def settle(record: Record) -> RecordKey | None:
        try:
            outcome = await failures.settle(record, failure)
        except Stopping:
            return None
        return _key(record) if outcome in (Outcome.DEAD_LETTERED, Outcome.DROPPED) else None

    tasks = [asyncio.ensure_future(settle(record)) for record in records]
    done, pending = await asyncio.wait(tasks, timeout=max(0.0, within))
    for task in pending:
        task.cancel()
    settled = {key for task in done if (key := task.result()) is not None}
    if len(settled) < len(records):
        log.error(
            "%d record(s) on their last delivery could not be dead-lettered in time; the "
            "broker archives them",
            len(records) - len(settled),
        )
    return settled


def _key(record: Record) -> RecordKey:
    return (record.topic, record.partition, record.offset)


def _ledger(topic: str, partition: int, services: LaneServices) -> AcknowledgingLedger:
    buffer = services.buffer
    control: PartitionControl = services.control
    process: ProcessBuffer = services.process_buffer
    metrics: Metrics = services.metrics
    return AcknowledgingLedger(
        topic,
        partition,
        control,
        process,
        metrics,
        max_records=buffer.max_records_per_partition,
        max_bytes=buffer.max_bytes_per_partition,
        trace_records=services.trace_records,
    )
