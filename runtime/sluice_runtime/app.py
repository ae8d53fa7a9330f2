"""One runtime process: sources → lanes → sink, with ordered start and shutdown.

Shutdown (SIGTERM, SIGINT): stop fetching, let the lanes deliver what they hold within the
grace period, abort what is still retrying (unacknowledged, so read again later), commit
synchronously and leave the group.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from pathlib import Path

from sluice_runtime.backpressure import ProcessBuffer
from sluice_runtime.config import Connector
from sluice_runtime.contract import METRICS_PORT
from sluice_runtime.deadletter import FailurePath
from sluice_runtime.delivery import Deliverer
from sluice_runtime.envelope import Record
from sluice_runtime.lane import Lane, LaneServices
from sluice_runtime.metrics import Metrics, ProbeServer, runtime_probes
from sluice_runtime.processors import build_processor
from sluice_runtime.ratelimit import AdaptiveLimiter
from sluice_runtime.sink import HttpSink
from sluice_runtime.source import KafkaSource, kafka_auth_settings

log = logging.getLogger("sluice.runtime")

DEFAULT_GRACE = 25.0
MAX_CONCURRENCY = 64


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


class Runtime:
    def __init__(
        self,
        connector: Connector,
        *,
        base_dir: Path | None = None,
        metrics_port: int | None = METRICS_PORT,
        grace: float = DEFAULT_GRACE,
        sink_uri: str | None = None,
    ) -> None:
        self.connector = connector
        self.base_dir = base_dir
        self.metrics = Metrics()
        self.metrics_port = metrics_port
        self.grace = grace
        self.sink_uri = sink_uri
        # Keyed by consumer too: with several consumers per process a partition can move
        # from one to another, and the new owner's lane must not be the old one's.
        self.lanes: dict[tuple[int, str, int], Lane] = {}
        self.sources: list[KafkaSource] = []
        self.abort = asyncio.Event()
        self.stopping = asyncio.Event()
        self.health: ProbeServer | None = None
        self.failure: BaseException | None = None
        buffer = connector.spec.runtime.buffer
        self.buffer = ProcessBuffer(
            buffer.max_records, buffer.max_bytes, self.metrics, self._set_reading
        )

    def ready(self) -> bool:
        return bool(self.sources) and not self.stopping.is_set()

    async def run(self) -> None:
        """Run until SIGTERM/SIGINT or ``stop()``."""
        loop = asyncio.get_running_loop()
        spec = self.connector.spec
        processor = build_processor(self.connector, self.base_dir)
        sink = HttpSink(self.connector, self.sink_uri, MAX_CONCURRENCY)
        rate = spec.delivery.rate_limit.requests_per_second if spec.delivery.rate_limit else None
        limiter = AdaptiveLimiter(MAX_CONCURRENCY, rate, self.metrics)
        deliverer = Deliverer(
            sink.send, spec.delivery, self.metrics, limiter, self.abort, prepare=sink.prepare
        )
        failures = FailurePath(
            self.connector,
            self.metrics,
            self.abort,
            kafka_auth_settings(spec.source.kafka.auth),
        )
        for signum in (signal.SIGTERM, signal.SIGINT):
            # Not possible off the main thread (tests run the runtime in a thread).
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, self.stop)
        if self.metrics_port is not None:
            self.health = runtime_probes(self.metrics, self.metrics_port, self.ready).start()

        def services_for(source: KafkaSource) -> LaneServices:
            return LaneServices(
                connector=self.connector,
                processor=processor,
                deliverer=deliverer,
                failures=failures,
                metrics=self.metrics,
                store_offset=source.store,
                set_paused=source.set_paused,
                trace_records=spec.runtime.trace_records,
                buffer=self.buffer,
                on_fatal=self._fatal,
            )

        self._services_for = services_for
        for index in range(spec.scaling.consumers_per_replica):
            source = KafkaSource(
                self.connector,
                index,
                loop,
                self._records,
                self._assigned,
                self._revoked,
                self._lost,
                revoke_timeout=self.grace,
                on_lag=self._lag,
                on_fatal=self._fatal,
            )
            self.sources.append(source)
            source.start()
        log.info(
            "Started runtime for %s/%s: topics %s, group %s, %d consumer(s)",
            self.connector.metadata.namespace,
            self.connector.metadata.name,
            ",".join(spec.source.kafka.topics),
            self.connector.consumer_group,
            len(self.sources),
        )
        try:
            await self.stopping.wait()
            await self._shutdown()
            if self.failure is not None:
                raise RuntimeError(f"a lane failed: {self.failure!r}") from self.failure
        finally:
            await sink.close()
            failures.close()
            if self.health is not None:
                self.health.stop()

    def _set_reading(self, reading: bool) -> None:
        for source in self.sources:
            source.set_reading(reading)

    def _fatal(self, error: BaseException) -> None:
        self.failure = error
        self.stop()

    def stop(self) -> None:
        if not self.stopping.is_set():
            log.info("Stopping: delivering buffered records (grace %.0fs)", self.grace)
            self.stopping.set()

    async def _shutdown(self) -> None:
        for index, topic, partition in self.lanes:
            self.sources[index].set_paused(topic, partition, True)
        lanes = list(self.lanes.values())
        drained = asyncio.gather(*(lane.drain() for lane in lanes))
        try:
            await asyncio.wait_for(asyncio.shield(drained), self.grace)
        except TimeoutError:
            log.warning("Grace period over; unacknowledged records will be read again")
            self.abort.set()
            await asyncio.gather(*(lane.abort() for lane in lanes))
        for source in self.sources:
            source.stop()
        await asyncio.gather(*(asyncio.to_thread(s.closed.wait, 30) for s in self.sources))
        log.info("Stopped runtime")

    # Source callbacks, on the loop thread.
    def _records(self, source: KafkaSource, groups: dict[tuple[str, int], list[Record]]) -> None:
        for tp, group in groups.items():
            self.metrics.consumed_from(tp[0]).inc(len(group))
            lane = self.lanes.get((source.index, *tp))
            if lane is None or lane.draining:
                continue  # revoked meanwhile: not acknowledged, the new owner reads it
            lane.feed(group)

    def _assigned(self, source: KafkaSource, tps: list[tuple[str, int]]) -> None:
        for topic, partition in tps:
            key = (source.index, topic, partition)
            if key not in self.lanes:
                lane = Lane(topic, partition, self._services_for(source))
                self.lanes[key] = lane
                lane.start()

    def _take_lanes(self, source: KafkaSource, tps: list[tuple[str, int]]) -> list[Lane]:
        keys = [(source.index, topic, partition) for topic, partition in tps]
        return [self.lanes.pop(key) for key in keys if key in self.lanes]

    async def _revoked(self, source: KafkaSource, tps: list[tuple[str, int]]) -> None:
        lanes = self._take_lanes(source, tps)
        try:
            await asyncio.wait_for(asyncio.gather(*(lane.drain() for lane in lanes)), self.grace)
        except TimeoutError:
            log.warning("Revoked lanes did not drain in %.0fs; aborting them", self.grace)
            await asyncio.gather(*(lane.abort() for lane in lanes))

    async def _lost(self, source: KafkaSource, tps: list[tuple[str, int]]) -> None:
        lanes = self._take_lanes(source, tps)
        await asyncio.gather(*(lane.abort() for lane in lanes))

    def _lag(self, topic: str, partition: int, lag: int) -> None:
        self.metrics.lag.labels(topic=topic, partition=str(partition)).set(lag)
