"""``sluice dlq redrive``: send dead-lettered records back through a Connector's pipeline.

The dead-letter topic is read with a manual assignment (no consumer group, nothing
committed, nothing removed), from ``--since`` or the beginning up to the end offsets seen
at start. Each record gets its original coordinates back from the ``sluice.error.*``
headers, goes through the filter and transform again, and is delivered in windows with the
Connector's retry policy. The report says how many went through and how many failed again.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from sluice_runtime.config import Connector, load_connector_file
from sluice_runtime.contract import ERROR_HEADER_PREFIX
from sluice_runtime.delivery import Deliverer
from sluice_runtime.errors import SluiceError, SpecError
from sluice_runtime.failures import FailurePolicy
from sluice_runtime.metrics import Metrics
from sluice_runtime.processors import build_processor
from sluice_runtime.ratelimit import AdaptiveLimiter
from sluice_runtime.records import Event, Record, RecordFailure
from sluice_runtime.sink import HttpSink
from sluice_runtime.source import kafka_auth_settings, records_from_messages

log = logging.getLogger("sluice.redrive")


@dataclass
class RedriveReport:
    read: int = 0
    delivered: int = 0
    filtered: int = 0
    failed: int = 0


def original_record(record: Record) -> Record:
    """The record as it was before dead-lettering: coordinates and headers restored."""
    errors = {
        k[len(ERROR_HEADER_PREFIX) :]: (v or b"").decode()
        for k, v in record.headers
        if k.startswith(ERROR_HEADER_PREFIX)
    }
    headers = [(k, v) for k, v in record.headers if not k.startswith(ERROR_HEADER_PREFIX)]
    try:
        return Record(
            errors["topic"],
            int(errors["partition"]),
            int(errors["offset"]),
            record.timestamp,
            record.key,
            record.value,
            headers,
        )
    except (KeyError, ValueError):
        return Record(
            record.topic,
            record.partition,
            record.offset,
            record.timestamp,
            record.key,
            record.value,
            headers,
        )


def read_dead_letters(
    connector: Connector, since: datetime | None, limit: int | None
) -> list[Record]:
    dead_letter = connector.spec.delivery.dead_letter
    if dead_letter is None or dead_letter.kafka is None:
        raise SpecError(
            ("spec", "delivery", "deadLetter", "kafka"), "is not set: there is no DLQ to redrive"
        )
    kafka = connector.spec.source.kafka
    servers = dead_letter.kafka.bootstrap_servers or kafka.bootstrap_servers
    consumer = Consumer(
        {
            "bootstrap.servers": ",".join(servers),
            "group.id": f"{connector.consumer_group}.redrive",  # required; never committed
            "enable.auto.commit": False,
            **kafka_auth_settings(kafka.auth),
        },
        logger=log,
    )
    topic = dead_letter.kafka.topic
    records: list[Record] = []
    try:
        metadata = consumer.list_topics(topic, timeout=15)
        if topic not in metadata.topics or metadata.topics[topic].error is not None:
            raise SluiceError(f"dead-letter topic {topic!r} not found")
        numbers = sorted(metadata.topics[topic].partitions)
        starts: dict[int, int] = {}
        ends: dict[int, int] = {}
        for number in numbers:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, number), timeout=15)
            starts[number], ends[number] = low, high
        if since is not None:
            stamp = int(since.timestamp() * 1000)
            found = consumer.offsets_for_times(
                [TopicPartition(topic, n, stamp) for n in numbers], timeout=15
            )
            # -1: nothing at or after that time in this partition.
            starts.update(
                {tp.partition: tp.offset if tp.offset >= 0 else ends[tp.partition] for tp in found}
            )
        todo = {n for n in numbers if starts[n] < ends[n]}
        consumer.assign([TopicPartition(topic, n, starts[n]) for n in sorted(todo)])
        while todo and (limit is None or len(records) < limit):
            message = consumer.poll(1.0)
            if message is None or message.error() is not None:
                continue
            for record in records_from_messages([message]):
                if record.offset < ends[record.partition]:
                    records.append(record)
                if record.offset + 1 >= ends[record.partition]:
                    todo.discard(record.partition)
    finally:
        consumer.close()
    return records[:limit] if limit is not None else records


async def redrive(
    connector: Connector, records: list[Record], base_dir: Path | None
) -> RedriveReport:
    report = RedriveReport(read=len(records))
    processor = build_processor(connector, base_dir)
    metrics = Metrics()
    sink = HttpSink(connector)
    # Whatever fails again is reported, never held: redrive is a one-off run.
    delivery = connector.spec.delivery.model_copy(update={"error_tolerance": "all"})
    deliverer = Deliverer(
        sink.send,
        delivery,
        metrics,
        AdaptiveLimiter(8, None, metrics),
        FailurePolicy(delivery, None, metrics, asyncio.Event()),
    )
    items: list[Event] = []
    for record in map(original_record, records):
        processed = processor(record)
        if isinstance(processed, RecordFailure):
            report.failed += 1
            print(
                f"{record.event_id}: failed again at {processed.stage}: {processed.reason}",
                file=sys.stderr,
            )
        elif not processed:
            report.filtered += 1
        else:
            items += [Event(record, data, index) for index, data in enumerate(processed)]
    size = connector.spec.window.max_messages
    delivered_records: set[str] = set()
    try:
        for start in range(0, len(items), size):
            chunk = items[start : start + size]
            failures = await deliverer.deliver(
                chunk, lambda done: delivered_records.update(i.record.event_id for i in done)
            )
            failed = {item.record.event_id: failure for item, failure in failures}
            for event_id, failure in failed.items():
                print(f"{event_id}: failed again: {failure.reason}", file=sys.stderr)
            report.failed += len(failed)
            delivered_records.difference_update(failed)
    finally:
        await sink.close()
    report.delivered = len(delivered_records)
    return report


def run_redrive(path: str, since: str | None, limit: int | None) -> int:
    try:
        connector = load_connector_file(path)
        when = datetime.fromisoformat(since) if since else None
        print(f"Reading dead-lettered records of {connector.metadata.name}...", file=sys.stderr)
        records = read_dead_letters(connector, when, limit)
        print(f"Redriving {len(records)} record(s) to {connector.spec.sink.uri}", file=sys.stderr)
        report = asyncio.run(redrive(connector, records, Path(path).resolve().parent))
    except (SluiceError, ValueError) as error:
        print(f"sluice dlq redrive: {error}", file=sys.stderr)
        return 2
    print(
        f'{{"read": {report.read}, "delivered": {report.delivered}, '
        f'"filtered": {report.filtered}, "failedAgain": {report.failed}}}'
    )
    return 0 if report.failed == 0 else 1
