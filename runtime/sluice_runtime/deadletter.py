"""The dead-letter topic's writer.

The DLQ record keeps the original key, value and headers and adds ``sluice.error.*``
headers. It is produced idempotently with ``acks=all``, and ``write`` returns only after
the broker confirmed it or refused it; what then happens is the failure policy's business
(``failures.py``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from sluice_runtime.config import Connector
from sluice_runtime.contract import ERROR_HEADER_PREFIX
from sluice_runtime.records import Record, RecordFailure

log = logging.getLogger("sluice.deadletter")


def error_headers(
    record: Record, failure: RecordFailure, connector: Connector, deliveries: int | None = None
) -> list[tuple[str, str | bytes | None]]:
    """``deliveries``: how many times a share group delivered the record (queue mode)."""

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
        *([h("deliveries", deliveries)] if deliveries is not None else []),
    ]


class DeadLetterWriter:
    """Writes failed records to the dead-letter topic and says whether the broker took
    them (the failure policy decides what to do when it did not)."""

    def __init__(self, connector: Connector, kafka_settings: dict[str, str]) -> None:
        dead_letter = connector.spec.delivery.dead_letter
        assert dead_letter is not None
        assert dead_letter.kafka is not None
        self.connector = connector
        self.topic = dead_letter.kafka.topic
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
            },
            logger=log,  # librdkafka's lines as JSON logs, not raw stderr
        )
        # Queue mode tells how often the broker delivered a record (share_source.py).
        self.delivery_count: Callable[[Record], int | None] = lambda _record: None
        self._running = True
        self._poller = threading.Thread(target=self._poll, daemon=True, name="dlq-poll")
        self._poller.start()

    @classmethod
    def for_connector(
        cls, connector: Connector, kafka_settings: dict[str, str]
    ) -> DeadLetterWriter | None:
        """The writer of the Connector's dead-letter topic, or None when it has none."""
        dead_letter = connector.spec.delivery.dead_letter
        if dead_letter is None or dead_letter.kafka is None:
            return None
        return cls(connector, kafka_settings)

    def _poll(self) -> None:
        while self._running:
            self._producer.poll(0.1)

    async def write(self, record: Record, failure: RecordFailure) -> str | None:
        """Produce the record with its error headers; None once the broker confirmed it,
        else why it could not be written."""
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
                headers=error_headers(record, failure, self.connector, self.delivery_count(record)),
                timestamp=int(time.time() * 1000),
                on_delivery=on_delivery,
            )
        except (KafkaException, BufferError) as error:
            return str(error)
        return await done

    def close(self) -> None:
        self._running = False
        self._producer.flush(10)
