"""The failure path: a record that failed for good is dead-lettered (or, with no DLQ set,
dropped, counted and logged), and only then acknowledged.

The DLQ record keeps the original key, value and headers and adds ``sluice.error.*``
headers. It is produced idempotently with ``acks=all`` and the call returns only after the
broker confirmed it; while the DLQ cannot be written, ``handle`` keeps retrying, so the
partition blocks rather than committing a record that went nowhere.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from datetime import UTC, datetime

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from sluice_runtime.config import Connector
from sluice_runtime.contract import ERROR_HEADER_PREFIX
from sluice_runtime.delivery import Stopping
from sluice_runtime.envelope import Record
from sluice_runtime.metrics import Metrics
from sluice_runtime.processors import RecordFailure

log = logging.getLogger("sluice.deadletter")

RETRY_DELAYS = (0.5, 1, 2, 5, 10, 30)


def error_headers(
    record: Record, failure: RecordFailure, connector: Connector
) -> list[tuple[str, str | bytes | None]]:
    def h(name: str, value: object) -> tuple[str, str | bytes | None]:
        return (f"{ERROR_HEADER_PREFIX}{name}", str(value).encode())

    return [
        *[(k, v) for k, v in record.headers if v is not None],
        h("stage", failure.stage),
        h("reason", failure.reason),
        h("status", "" if failure.status is None else failure.status),
        h("attempts", failure.attempts),
        h("topic", record.topic),
        h("partition", record.partition),
        h("offset", record.offset),
        h("connector", f"{connector.metadata.namespace}/{connector.metadata.name}"),
        h("time", datetime.now(UTC).isoformat(timespec="milliseconds")),
    ]


class FailurePath:
    def __init__(
        self,
        connector: Connector,
        metrics: Metrics,
        abort: asyncio.Event,
        kafka_settings: dict[str, str],
    ) -> None:
        self.connector = connector
        self.metrics = metrics
        self.abort = abort
        dead_letter = connector.spec.delivery.dead_letter
        self.topic = dead_letter.kafka.topic if dead_letter and dead_letter.kafka else None
        self._producer: Producer | None = None
        self._running = True
        if self.topic is not None:
            assert dead_letter is not None
            assert dead_letter.kafka is not None
            servers = (
                dead_letter.kafka.bootstrap_servers or connector.spec.source.kafka.bootstrap_servers
            )
            self._producer = Producer(
                {
                    **kafka_settings,
                    "bootstrap.servers": ",".join(servers),
                    "enable.idempotence": True,
                    "acks": "all",
                    "message.timeout.ms": 30000,
                    "linger.ms": 5,
                }
            )
            self._poller = threading.Thread(target=self._poll, daemon=True, name="dlq-poll")
            self._poller.start()

    def _poll(self) -> None:
        assert self._producer is not None
        while self._running:
            self._producer.poll(0.1)

    async def handle(self, record: Record, failure: RecordFailure) -> None:
        if self._producer is None:
            self.metrics.dropped.labels(stage=failure.stage).inc()
            log.warning(
                "Dropped record %s (no dead-letter queue): %s failed: %s",
                record.event_id,
                failure.stage,
                failure.reason,
            )
            return
        for attempt in range(10**9):
            error = await self._produce(record, failure)
            if error is None:
                self.metrics.dead_lettered.labels(stage=failure.stage).inc()
                log.info(
                    "Dead-lettered record %s to %s: %s failed: %s",
                    record.event_id,
                    self.topic,
                    failure.stage,
                    failure.reason,
                )
                return
            delay = RETRY_DELAYS[min(attempt, len(RETRY_DELAYS) - 1)]
            log.error(
                "Could not write record %s to the dead-letter topic %s (%s); the partition "
                "waits and retries in %ss",
                record.event_id,
                self.topic,
                error,
                delay,
            )
            try:
                await asyncio.wait_for(self.abort.wait(), timeout=delay)
            except TimeoutError:
                continue
            raise Stopping

    async def _produce(self, record: Record, failure: RecordFailure) -> str | None:
        assert self._producer is not None
        assert self.topic is not None
        loop = asyncio.get_running_loop()
        done: asyncio.Future[str | None] = loop.create_future()

        def on_delivery(error: KafkaError | None, _message: Message) -> None:
            outcome = None if error is None else str(error)

            def settle() -> None:
                if not done.done():
                    done.set_result(outcome)

            loop.call_soon_threadsafe(settle)

        try:
            self._producer.produce(
                self.topic,
                value=record.value,
                key=record.key,
                headers=list(error_headers(record, failure, self.connector)),
                timestamp=int(time.time() * 1000),
                on_delivery=on_delivery,
            )
        except (KafkaException, BufferError) as error:
            return str(error)
        return await done

    def close(self) -> None:
        self._running = False
        if self._producer is not None:
            self._producer.flush(10)
