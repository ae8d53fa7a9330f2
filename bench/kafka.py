"""The broker (started only when needed, as conftest.py does), topics and fast producers."""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from bench import ROOT
from bench.procs import BenchError

KAFKA_SCRIPT = ROOT / "scripts" / "kafka.sh"

# ~200-byte keyed JSON records, like an ad-view stream.
WIDE_VALUE = (
    b'{"user": {"id": %d, "name": "user-%d", "tier": "gold"}, "device": "ios-17", '
    b'"amount": 12.5, "country": "US", "campaign": "spring-sale", "page": "/products/%d", '
    b'"timestamp": %d}'
)
SMALL_VALUE = b'{"user": {"id": %d}, "device": "ios-17", "amount": 12.5, "timestamp": %d}'
KEYS = [b"user-%d" % i for i in range(1000)]


def wide_value(i: int, now_ms: int) -> bytes:
    user = i % 1000
    return WIDE_VALUE % (user, user, 1000 + i % 9000, now_ms)


LARGE_VALUE = b'{"user": {"id": %d}, "blob": "' + b"x" * 50_000 + b'", "timestamp": %d}'


def large_value(i: int, now_ms: int) -> bytes:
    """~50 KB: a record the size of a document or an image reference with its metadata."""
    return LARGE_VALUE % (i % 1000, now_ms)


def small_value(i: int, now_ms: int) -> bytes:
    return SMALL_VALUE % (i % 1000, now_ms)


def _script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(KAFKA_SCRIPT), *args], capture_output=True, text=True, check=False, cwd=ROOT
    )


@contextlib.contextmanager
def broker(log: Callable[[str], None]) -> Iterator[str]:
    """Bootstrap address of a real broker: ``SLUICE_TEST_KAFKA`` when set, else the local
    one, started with scripts/kafka.sh when it is not running and stopped afterwards only
    when this started it."""
    external = os.environ.get("SLUICE_TEST_KAFKA")
    if external:
        log(f"using the broker at {external} (SLUICE_TEST_KAFKA)")
        yield external
        return
    was_running = _script("status").returncode == 0
    if not was_running:
        log("starting the local Kafka broker (scripts/kafka.sh up)")
    result = _script("up")
    if result.returncode != 0:
        raise BenchError(f"could not start the local Kafka broker: {result.stderr.strip()}")
    address = result.stdout.strip().splitlines()[-1]
    try:
        yield address
    finally:
        if not was_running:
            log("stopping the Kafka broker this run started")
            _script("down")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@dataclass
class Produced:
    records: int
    seconds: float
    value_bytes: float  # mean value size

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0


class Kafka:
    """Topics and consumer groups of one benchmark run; all deleted by ``cleanup``."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.admin = AdminClient({"bootstrap.servers": bootstrap})
        self.topics: list[str] = []
        self.groups: list[str] = []

    def create_topic(self, partitions: int, prefix: str = "bench") -> str:
        name = unique(prefix)
        futures = self.admin.create_topics([NewTopic(name, num_partitions=partitions)])
        try:
            futures[name].result(timeout=30)
        except Exception as error:
            raise BenchError(
                f"cannot create topic {name} on {self.bootstrap} (is the broker up?): {error!r}"
            ) from None
        self.topics.append(name)
        self._wait_leaders(name, partitions)
        return name

    def _wait_leaders(self, topic: str, partitions: int, timeout: float = 30.0) -> None:
        """A new topic's partitions answer only once their leaders are elected."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.end_offsets(topic, partitions)
                return
            except KafkaException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def group(self, prefix: str) -> str:
        name = unique(f"bench-{prefix}")
        self.groups.append(name)
        return name

    def end_offsets(self, topic: str, partitions: int) -> int:
        """Records in the topic (sum of the high watermarks)."""
        consumer = _consumer(self.bootstrap)
        try:
            total = 0
            for partition in range(partitions):
                _low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=10
                )
                total += high
            return total
        finally:
            consumer.close()

    def cleanup(self) -> None:
        if self.groups:
            with contextlib.suppress(Exception):
                for future in self.admin.delete_consumer_groups(self.groups).values():
                    future.exception(timeout=30)
        if self.topics:
            with contextlib.suppress(Exception):
                for future in self.admin.delete_topics(self.topics).values():
                    future.exception(timeout=30)
        self.groups.clear()
        self.topics.clear()

    def close(self) -> None:
        """Drop the admin client's connections before the broker goes away, so librdkafka
        does not report the broker's shutdown as errors on stderr."""
        del self.admin
        gc.collect()

    def produce_bulk(
        self, topic: str, count: int, make_value: Callable[[int, int], bytes]
    ) -> Produced:
        """Produce ``count`` keyed records as fast as the client goes: large linger and
        batches, ``produce`` with a ``poll(0)`` now and then, ``flush`` at the end; checked
        against the topic's end offsets (nothing is counted per message in Python)."""
        before = self.end_offsets_all(topic)
        producer = Producer(
            {
                "bootstrap.servers": self.bootstrap,
                "linger.ms": 50,
                "batch.size": 1_000_000,
                "batch.num.messages": 10_000,
                "queue.buffering.max.messages": 1_000_000,
                "queue.buffering.max.kbytes": 1_048_576,
                "enable.idempotence": False,
                "acks": 1,
            }
        )
        started = time.perf_counter()
        size = 0
        now_ms = int(time.time() * 1000)
        for i in range(count):
            if i % 1000 == 0:
                now_ms = int(time.time() * 1000)
                producer.poll(0)
            value = make_value(i, now_ms)
            size += len(value)
            while True:
                try:
                    producer.produce(topic, value, KEYS[i % len(KEYS)])
                    break
                except BufferError:
                    producer.poll(0.05)
        if producer.flush(120) != 0:
            raise BenchError(f"could not produce {count} records to {topic} within 120 s")
        seconds = time.perf_counter() - started
        written = self.end_offsets_all(topic) - before
        if written != count:
            raise BenchError(f"produced {written} records to {topic}, wanted {count}")
        return Produced(count, seconds, size / count if count else 0.0)

    def end_offsets_all(self, topic: str) -> int:
        metadata = self.admin.list_topics(topic, timeout=10)
        return self.end_offsets(topic, len(metadata.topics[topic].partitions))


def _consumer(bootstrap: str) -> Consumer:
    return Consumer({"bootstrap.servers": bootstrap, "group.id": unique("bench-watermarks")})


class PacedProducer:
    """Produces one record at a time at a steady rate, with ``linger.ms=0`` so each record
    leaves at once (the latency row)."""

    def __init__(self, bootstrap: str) -> None:
        self.producer = Producer(
            {"bootstrap.servers": bootstrap, "linger.ms": 0, "enable.idempotence": False}
        )

    def run(
        self,
        topic: str,
        rate: float,
        seconds: float,
        make_value: Callable[[int, int], bytes],
        start_index: int = 0,
    ) -> Produced:
        count = int(rate * seconds)
        interval = 1.0 / rate
        started = time.perf_counter()
        size = 0
        for n in range(count):
            due = started + n * interval
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            i = start_index + n
            value = make_value(i, int(time.time() * 1000))
            size += len(value)
            self.producer.produce(topic, value, KEYS[i % len(KEYS)])
            self.producer.poll(0)
        if self.producer.flush(30) != 0:
            raise BenchError(f"could not deliver the paced records to {topic}")
        return Produced(count, time.perf_counter() - started, size / count if count else 0.0)


class FloorConsumer:
    """The consume floor of the latency row: a bare consumer with the runtime's fetch
    settings, timing record timestamp → poll, reading the same records as the runtime at
    the same time (its own group), in a process of its own (the bench's producer shares
    this one's interpreter). What it measures is what the broker, the producer and this
    machine's load cost before Sluice does anything; a broker that stalls stalls both."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        context = multiprocessing.get_context("spawn")
        self.connection, child = context.Pipe()
        self.process = context.Process(
            target=_floor_consumer, args=(bootstrap, topic, child), daemon=True
        )

    def start(self, timeout: float = 30.0) -> None:
        """Returns once the consumer has its partitions."""
        self.process.start()
        if not self.connection.poll(timeout) or self.connection.recv() != "assigned":
            raise BenchError("the floor consumer got no partitions")

    def finish(self, expected: int, since_ms: float, timeout: float = 15.0) -> list[float]:
        """Latencies in seconds of the records stamped at or after ``since_ms``, once
        ``expected`` records were read (or ``timeout`` passed), sorted."""
        self.connection.send((expected, since_ms, timeout))
        if not self.connection.poll(timeout + 10):
            raise BenchError("the floor consumer did not answer")
        latencies: list[float] = self.connection.recv()
        self.close()
        return latencies

    def close(self) -> None:
        if self.process.is_alive():
            self.process.join(5)
            if self.process.is_alive():
                self.process.kill()


def _floor_consumer(bootstrap: str, topic: str, connection: Connection) -> None:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique("bench-floor"),
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 100,
            "fetch.queue.backoff.ms": 10,
        }
    )
    consumer.subscribe([topic])
    deadline = time.monotonic() + 30
    while not consumer.assignment() and time.monotonic() < deadline:
        consumer.poll(0.1)
    connection.send("assigned")
    read: list[tuple[int, float]] = []  # (record timestamp ms, latency s)
    finish: tuple[int, float, float] | None = None
    stop_at = time.monotonic() + 300
    while time.monotonic() < stop_at:
        # As the runtime's poll thread does: take what is queued, else wait for one record.
        messages = consumer.consume(500, 0) or consumer.consume(1, 0.1)
        now = time.time()
        for message in messages:
            if message.error() is None:
                stamp = message.timestamp()[1]
                read.append((stamp, now - stamp / 1000))
        if finish is None and connection.poll():
            finish = connection.recv()
            stop_at = time.monotonic() + finish[2]
        if finish is not None and len(read) >= finish[0]:
            break
    consumer.close()
    since_ms = finish[1] if finish is not None else 0.0
    connection.send(sorted(latency for stamp, latency in read if stamp >= since_ms))
