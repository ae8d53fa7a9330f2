"""One runtime process: readers → lanes → sink, with ordered start and shutdown.

    KafkaReader (thread) ──records_read──▶ Lane per partition ──▶ HttpSink
          ▲                                  │ outcomes
          └──────── store / set_paused ◀──── PartitionLedger

Shutdown (SIGTERM, SIGINT): stop fetching, let the lanes finish the batches in flight
within the grace period and give back what was not sent (unacknowledged, so read again by
the next owner), abort what is still retrying, commit synchronously and leave the group.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import uvloop

from sluice_runtime.backpressure import ProcessBuffer
from sluice_runtime.config import Connector
from sluice_runtime.contract import METRICS_PORT
from sluice_runtime.deadletter import DeadLetterWriter
from sluice_runtime.delivery import Deliverer
from sluice_runtime.failures import FailurePolicy
from sluice_runtime.health import HealthTracker, RuntimeHealth
from sluice_runtime.lane import Lane, LaneServices
from sluice_runtime.metrics import Metrics, ProbeServer, runtime_probes
from sluice_runtime.processes import announce_port
from sluice_runtime.processors import ChunkProcessor, Processor, build_processor, pass_through
from sluice_runtime.ratelimit import AdaptiveLimiter
from sluice_runtime.records import Record
from sluice_runtime.schemas.decoder import RecordDecoder, build_decoder
from sluice_runtime.schemas.runtime import (
    build_chunk_processor,
    build_worker_chunk_processor,
)
from sluice_runtime.share_source import RecordKey, ShareReader, work_on_acquired
from sluice_runtime.sink import HttpSink
from sluice_runtime.source import KafkaReader, kafka_auth_settings
from sluice_runtime.transform import load_udf_source
from sluice_runtime.udf_pool import WorkerPool, make_undumpable

log = logging.getLogger("sluice.runtime")

DEFAULT_GRACE = 25.0
LOOP_STALL = 15.0  # seconds without a turn of the event loop before /healthz fails
HEALTH_EVERY = 2.0  # seconds between two snapshots of the delivery health (/status)
MAX_CONCURRENCY = 64
QUEUE_SETTLE_GRACE = 5.0  # seconds after the grace period for queue mode's last deliveries


def new_event_loop() -> asyncio.AbstractEventLoop:
    """The event loop a runtime runs on: uvloop's (libuv, with the loop's own machinery in
    C). The runtime's event loop thread does everything but reading Kafka, and with small
    batches most of that is the loop's own work: timers, callbacks, socket reads and
    writes. uvloop made one record per request about 8 % faster, at 7 % less CPU
    (docs/benchmarks.md)."""
    return uvloop.new_event_loop()


def run_runtime(main: Coroutine[Any, Any, None]) -> None:
    """``asyncio.run`` on the runtime's event loop (``new_event_loop``)."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(main)


def tune_garbage_collector() -> None:
    """Collect less often than CPython's default, for a process that runs one runtime.

    Records and their events stay alive from read to acknowledgement, so tens of thousands
    of young objects are always around; with the default generation-0 threshold (700
    allocations) the collector rescans them hundreds of times a second, which cost about a
    third of the throughput (make bench, throughput-batch100: 59k → 82k records/s). What
    was loaded at startup is frozen out of collection altogether.
    """
    gc.freeze()
    gc.set_threshold(50_000, 50, 50)


class DataPlane:
    """Implements ``SourceListener`` for its readers (``QueueListener`` in queue mode)."""

    def __init__(
        self,
        connector: Connector,
        *,
        base_dir: Path | None = None,
        metrics_port: int | None = METRICS_PORT,
        grace: float = DEFAULT_GRACE,
        sink_uri: str | None = None,
        loop_stall: float = LOOP_STALL,
        probe_host: str = "0.0.0.0",
        port_file: Path | None = None,
    ) -> None:
        """``probe_host`` and ``port_file``: where /metrics and the probes listen, and a file
        to write their port to once they do (a pod's runtime processes: ``processes.py``)."""
        self.connector = connector
        self.base_dir = base_dir
        self.metrics = Metrics()
        self.metrics_port = metrics_port
        self.grace = grace
        self.sink_uri = sink_uri
        self.loop_stall = loop_stall
        self.probe_host = probe_host
        self.port_file = port_file
        self._beat = time.monotonic()
        # Keyed by consumer too: with several consumers per process a partition can move
        # from one to another, and the new owner's lane must not be the old one's.
        self.lanes: dict[tuple[int, str, int], Lane] = {}
        self.readers: list[KafkaReader] = []
        self.share_readers: list[ShareReader] = []  # queue mode, instead of readers
        self._queue_work: set[asyncio.Task[set[RecordKey]]] = set()
        self.abort = asyncio.Event()
        self.stopping = asyncio.Event()
        self.health: ProbeServer | None = None
        self.failure: BaseException | None = None
        self.health_tracker = HealthTracker()
        buffer = connector.spec.runtime.buffer
        self.buffer = ProcessBuffer(
            buffer.max_records, buffer.max_bytes, self.metrics, self._set_reading
        )

    def alive(self) -> bool:
        """Whether the event loop still turns (asked from the probe server's thread): a
        loop stuck in a blocking call looks alive to everything else."""
        return time.monotonic() - self._beat < self.loop_stall

    async def _heartbeat(self) -> None:
        last_health = 0.0
        said = "delivering normally"
        while True:
            self._beat = time.monotonic()
            if self._beat - last_health >= HEALTH_EVERY:
                last_health = self._beat
                summary = self.take_health().summary()
                if summary != said:  # logged on change, not every snapshot
                    log.log(
                        logging.INFO if summary == "delivering normally" else logging.WARNING,
                        "Health: %s",
                        summary,
                    )
                    said = summary
            await asyncio.sleep(1)

    def take_health(self) -> RuntimeHealth:
        """A snapshot of the delivery health (on the loop: it reads the lanes)."""
        oldest = [
            stamp
            for lane in self.lanes.values()
            if (stamp := lane.ledger.oldest_held_timestamp()) is not None
        ]
        dead_lettered = sum(
            sample.value
            for metric in self.metrics.dead_lettered.collect()
            for sample in metric.samples
            if sample.name.endswith("_total")
        )
        return self.health_tracker.snapshot(
            len(self.lanes),
            min(oldest) if oldest else None,
            self.metrics.registry.get_sample_value("sluice_delivered_total") or 0.0,
            dead_lettered,
        )

    def ready(self) -> bool:
        return bool(self.readers or self.share_readers) and not self.stopping.is_set()

    async def run(self) -> None:
        """Run until SIGTERM/SIGINT or ``stop()``."""
        loop = asyncio.get_running_loop()
        spec = self.connector.spec
        # Keys or values from a schema registry: schemas are fetched off the loop, so the
        # records are processed in chunks that can wait for them (schemas/runtime.py).
        decoder = build_decoder(spec.source.kafka)
        processor, worker_pool = await self._processing(decoder)
        chunk_processor: ChunkProcessor | None = None
        if worker_pool is not None:
            chunk_processor = worker_pool.process
            if decoder is not None:
                chunk_processor = build_worker_chunk_processor(worker_pool, decoder)
        elif decoder is not None:
            assert processor is not None
            chunk_processor = build_chunk_processor(processor, decoder)
            processor = None
        sink = HttpSink(self.connector, self.sink_uri, MAX_CONCURRENCY)
        rate = spec.delivery.rate_limit.requests_per_second if spec.delivery.rate_limit else None
        limiter = AdaptiveLimiter(MAX_CONCURRENCY, rate, self.metrics)
        dead_letter = DeadLetterWriter.for_connector(
            self.connector, kafka_auth_settings(spec.source.kafka.auth)
        )
        failures = FailurePolicy(
            spec.delivery, dead_letter, self.metrics, self.abort, self.health_tracker
        )
        deliverer = Deliverer(
            sink.send, spec.delivery, self.metrics, limiter, failures, prepare=sink.prepare
        )
        for signum in (signal.SIGTERM, signal.SIGINT):
            # Not possible off the main thread (tests run the runtime in a thread).
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signum, self.stop)
        if self.metrics_port is not None:
            self.health = runtime_probes(
                self.metrics,
                self.metrics_port,
                self.ready,
                self.alive,
                lambda: self.health_tracker.last_json,
                host=self.probe_host,
            ).start()
            if self.port_file is not None:
                announce_port(self.port_file, self.health.port)
        heartbeat = asyncio.create_task(self._heartbeat(), name="heartbeat")

        def services_for(reader: KafkaReader | ShareReader) -> LaneServices:
            return LaneServices(
                window=spec.window,
                delivery=spec.delivery,
                buffer=spec.runtime.buffer,
                processor=processor,
                chunk_processor=chunk_processor,
                deliverer=deliverer,
                failures=failures,
                metrics=self.metrics,
                control=reader,
                process_buffer=self.buffer,
                trace_records=spec.runtime.trace_records,
                on_fatal=self.failed,
            )

        self._services_for = services_for
        queue = spec.source.kafka.consumption == "queue"
        for index in range(spec.scaling.consumers_per_replica):
            if queue:
                share_reader = ShareReader(self.connector, index, loop, self)
                self.share_readers.append(share_reader)
                share_reader.start()
                continue
            reader = KafkaReader(self.connector, index, loop, self, revoke_timeout=self.grace)
            self.readers.append(reader)
            reader.start()
        if queue and dead_letter is not None:
            dead_letter.delivery_count = self._delivery_count
        log.info(
            "Started runtime for %s/%s: topics %s, %s %s, %d consumer(s)",
            self.connector.metadata.namespace,
            self.connector.metadata.name,
            ",".join(spec.source.kafka.topics),
            "share group" if queue else "group",
            self.connector.share_group if queue else self.connector.consumer_group,
            spec.scaling.consumers_per_replica,
        )
        try:
            await self.stopping.wait()
            await self._shutdown()
            if self.failure is not None:
                raise RuntimeError(f"a lane failed: {self.failure!r}") from self.failure
        finally:
            heartbeat.cancel()
            await sink.close()
            if worker_pool is not None:
                await worker_pool.close()
            if decoder is not None and decoder.registry is not None:
                decoder.registry.close()
            if dead_letter is not None:
                dead_letter.close()
            if self.health is not None:
                self.health.stop()

    async def _processing(
        self, decoder: RecordDecoder | None
    ) -> tuple[Processor | None, WorkerPool | None]:
        """The in-process processor, or the worker process (started, a UDF's module
        imported: a SpecError when it cannot be) for a UDF or ``runtime.processing:
        worker``. Records that pass through untouched need neither."""
        spec = self.connector.spec
        udf = spec.transform.udf if spec.transform is not None else None
        source: str | None = None
        if udf is not None:
            source = load_udf_source(udf, self.base_dir, ("spec", "transform", "udf"))
        else:
            processor = build_processor(self.connector, self.base_dir, decoder=decoder)
            if spec.runtime.processing == "inline" or processor is pass_through:
                return processor, None
        make_undumpable()
        pool = WorkerPool(self.connector, source)
        await pool.start()
        return None, pool

    def _set_reading(self, reading: bool) -> None:
        for reader in self.readers:
            reader.set_reading(reading)
        for share_reader in self.share_readers:
            share_reader.set_reading(reading)

    def failed(self, error: BaseException) -> None:
        self.failure = error
        self.stop()

    def stop(self) -> None:
        if not self.stopping.is_set():
            log.info("Stopping: finishing the batches in flight (grace %.0fs)", self.grace)
            self.stopping.set()

    async def _shutdown(self) -> None:
        for index, topic, partition in self.lanes:
            self.readers[index].set_paused(topic, partition, True)
        for share_reader in self.share_readers:
            share_reader.stop()  # polls no more; what it acquired is settled below
        lanes = list(self.lanes.values())
        queue_work = list(self._queue_work)
        drained = asyncio.gather(
            *(lane.hand_back() for lane in lanes),
            *(asyncio.wait([task]) for task in queue_work),
        )
        try:
            await asyncio.wait_for(asyncio.shield(drained), self.grace)
        except TimeoutError:
            log.warning("Grace period over; unacknowledged records will be read again")
            self.abort.set()
            await asyncio.gather(*(lane.abort() for lane in lanes))
            if queue_work:
                # Aborted, a poll's work ends at once; a moment more lets it dead-letter
                # what is on its last delivery rather than release it to the broker's archive.
                _done, late = await asyncio.wait(queue_work, timeout=QUEUE_SETTLE_GRACE)
                for task in late:
                    task.cancel()  # its records are released
        for reader in self.readers:
            reader.stop()
        closing = [reader.closed for reader in self.readers]
        closing += [share_reader.closed for share_reader in self.share_readers]
        await asyncio.gather(*(asyncio.to_thread(closed.wait, 30) for closed in closing))
        log.info("Stopped runtime")

    # SourceListener: what the readers report, on the loop thread.

    def records_read(
        self, reader: KafkaReader, groups: dict[tuple[str, int], list[Record]]
    ) -> None:
        for tp, group in groups.items():
            self.metrics.consumed_from(tp[0]).inc(len(group))
            lane = self.lanes.get((reader.index, *tp))
            if lane is None or lane.draining:
                continue  # revoked meanwhile: not acknowledged, the new owner reads it
            lane.feed(group)

    def assigned(self, reader: KafkaReader, partitions: list[tuple[str, int]]) -> None:
        self.health_tracker.rebalanced()
        for topic, partition in partitions:
            key = (reader.index, topic, partition)
            if key not in self.lanes:
                lane = Lane.create(topic, partition, self._services_for(reader))
                self.lanes[key] = lane
                lane.start()

    def _take_lanes(self, reader: KafkaReader, partitions: list[tuple[str, int]]) -> list[Lane]:
        keys = [(reader.index, topic, partition) for topic, partition in partitions]
        for topic, partition in partitions:
            self.metrics.forget_partition(topic, partition)
        return [self.lanes.pop(key) for key in keys if key in self.lanes]

    async def revoked(self, reader: KafkaReader, partitions: list[tuple[str, int]]) -> None:
        self.health_tracker.rebalanced()
        lanes = self._take_lanes(reader, partitions)
        try:
            await asyncio.wait_for(
                asyncio.gather(*(lane.hand_back() for lane in lanes)), self.grace
            )
        except TimeoutError:
            log.warning("Revoked lanes did not drain in %.0fs; aborting them", self.grace)
            await asyncio.gather(*(lane.abort() for lane in lanes))

    async def lost(self, reader: KafkaReader, partitions: list[tuple[str, int]]) -> None:
        lanes = self._take_lanes(reader, partitions)
        await asyncio.gather(*(lane.abort() for lane in lanes))

    # QueueListener: what the share readers ask, on the loop thread.

    async def acquired(
        self, reader: ShareReader, groups: dict[tuple[str, int], list[Record]], budget: float
    ) -> set[RecordKey]:
        for (topic, _partition), group in groups.items():
            self.metrics.consumed_from(topic).inc(len(group))
        if self.stopping.is_set():
            return set()  # acquired while stopping: released, for the pods that stay
        assert reader.facts is not None
        task = asyncio.ensure_future(
            work_on_acquired(
                groups, self._services_for(reader), reader.delivery_counts, reader.facts, budget
            )
        )
        self._queue_work.add(task)
        try:
            return await task
        finally:
            self._queue_work.discard(task)

    def _delivery_count(self, record: Record) -> int | None:
        key = (record.topic, record.partition, record.offset)
        for reader in self.share_readers:
            if key in reader.delivery_counts:
                return reader.delivery_counts[key]
        return None

    def lag(self, topic: str, partition: int, lag: int) -> None:
        self.metrics.lag.labels(topic=topic, partition=str(partition)).set(lag)
