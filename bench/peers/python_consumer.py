"""A hand-tuned Python Kafka → HTTP consumer: what a user could write in an afternoon
instead of running Sluice, and the peer make bench holds the runtime against.

    python -m bench.peers.python_consumer --bootstrap B --topic T --group G --url U
        [--batch 100] [--interval 0.1]

It keeps what matters for a fair comparison: at-least-once (an offset is stored only after
the function answered 2xx for every record below it; librdkafka commits what was stored),
per-partition order (one request in flight per partition), bounded memory. It skips what
Sluice does on top: values are joined into a JSON array without being looked at (no
validation), no rebalance handling, no dead-letter topic, no metrics, no retry schedule.

Records are consumed in batches on a thread (librdkafka's calls block), handed to the
event loop per poll, and POSTed with aiohttp, ``--batch`` values a request. Prints
``assigned <n>`` when the group assigned partitions, ``stopped`` after SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import threading
import time
from collections import deque

import aiohttp
from confluent_kafka import Consumer, TopicPartition

POLL_BATCH = 1000
MAX_HELD = 50_000  # records read and not yet delivered, all partitions together


class Partition:
    """Values read from one partition and not yet delivered, in offset order."""

    def __init__(self) -> None:
        self.values: list[bytes] = []
        self.offsets: list[int] = []
        self.first_at = 0.0
        self.ready = asyncio.Event()


class HandTunedConsumer:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.consumer = Consumer(
            {
                "bootstrap.servers": args.bootstrap,
                "group.id": args.group,
                "auto.offset.reset": "earliest",
                "enable.auto.commit": True,
                "enable.auto.offset.store": False,
                "auto.commit.interval.ms": 1000,
                "enable.partition.eof": False,
                # librdkafka's default waits 1 s to fetch a partition again once its local
                # queue was full, which capped this consumer at about 146,000 records/s on
                # a fast machine, idle at 0.4 of a core: Sluice's own setting.
                "fetch.queue.backoff.ms": 10,
            }
        )
        self.partitions: dict[int, Partition] = {}
        self.senders: list[asyncio.Task[None]] = []
        self.to_store: deque[TopicPartition] = deque()  # applied by the poll thread
        self.held = 0
        self.room = threading.Event()
        self.room.set()
        self.stop = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.session: aiohttp.ClientSession | None = None

    # The poll thread.

    def poll(self) -> None:
        assigned = threading.Event()

        def on_assign(_consumer: Consumer, partitions: list[TopicPartition]) -> None:
            print(f"assigned {len(partitions)}", flush=True)
            assigned.set()

        self.consumer.subscribe([self.args.topic], on_assign=on_assign)
        consume, store = self.consumer.consume, self.consumer.store_offsets
        assert self.loop is not None
        while not self.stop.is_set():
            if self.to_store:
                offsets = [self.to_store.popleft() for _ in range(len(self.to_store))]
                store(offsets=offsets)
            if not self.room.wait(0.1):
                consume(0, 0)  # serve the group while full
                continue
            messages = consume(POLL_BATCH, 0.1)
            if not messages:
                continue
            groups: dict[int, tuple[list[bytes], list[int]]] = {}
            for message in messages:
                if message.error() is not None:
                    continue
                group = groups.get(message.partition())  # type: ignore[arg-type]
                if group is None:
                    group = groups[message.partition()] = ([], [])  # type: ignore[index]
                group[0].append(message.value())  # type: ignore[arg-type]
                group[1].append(message.offset())  # type: ignore[arg-type]
            self.loop.call_soon_threadsafe(self.take, groups, len(messages))
        if self.to_store:
            store(offsets=list(self.to_store))
        self.consumer.close()  # commits what was stored

    # The event loop.

    def take(self, groups: dict[int, tuple[list[bytes], list[int]]], count: int) -> None:
        self.held += count  # only ever changed on the loop
        if self.held >= MAX_HELD:
            self.room.clear()
        now = time.monotonic()
        for number, (values, offsets) in groups.items():
            partition = self.partitions.get(number)
            if partition is None:
                partition = self.partitions[number] = Partition()
                self.senders.append(asyncio.create_task(self.send_loop(number, partition)))
            if not partition.values:
                partition.first_at = now
            partition.values += values
            partition.offsets += offsets
            partition.ready.set()

    async def send_loop(self, number: int, partition: Partition) -> None:
        batch, interval = self.args.batch, self.args.interval
        while True:
            if not partition.values:
                partition.ready.clear()
                await partition.ready.wait()
            wait = partition.first_at + interval - time.monotonic()
            if len(partition.values) < batch and wait > 0:
                partition.ready.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(partition.ready.wait(), wait)
                continue
            values = partition.values[:batch]
            next_offset = partition.offsets[len(values) - 1] + 1
            del partition.values[:batch], partition.offsets[:batch]
            partition.first_at = time.monotonic()
            await self.post(b"[" + b",".join(values) + b"]")
            self.to_store.append(TopicPartition(self.args.topic, number, next_offset))
            self.held -= len(values)
            if self.held < MAX_HELD // 2:
                self.room.set()

    async def post(self, body: bytes) -> None:
        """POST until the function answers 2xx (at-least-once: nothing is skipped)."""
        assert self.session is not None
        delay = 0.1
        while True:
            try:
                async with self.session.post(
                    self.args.url, data=body, headers={"content-type": "application/json"}
                ) as response:
                    await response.read()
                    if 200 <= response.status < 300:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def run(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=64), skip_auto_headers=("User-Agent",)
        )
        stopped = asyncio.Event()
        self.loop.add_signal_handler(signal.SIGTERM, stopped.set)
        self.loop.add_signal_handler(signal.SIGINT, stopped.set)
        poller = threading.Thread(target=self.poll, name="kafka", daemon=True)
        poller.start()
        await stopped.wait()
        for sender in self.senders:
            sender.cancel()
        await asyncio.gather(*self.senders, return_exceptions=True)
        self.stop.set()
        await asyncio.to_thread(poller.join, 30)
        await self.session.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="a hand-tuned Kafka → HTTP consumer")
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--batch", type=int, default=100, help="records per request")
    parser.add_argument("--interval", type=float, default=0.1, help="seconds a batch waits")
    args = parser.parse_args()
    asyncio.run(HandTunedConsumer(args).run())
    print("stopped", flush=True)


if __name__ == "__main__":
    main()
