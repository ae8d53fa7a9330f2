"""The queue-mode row: one partition, a slow function, 1 runtime in group mode against 8
runtimes in queue mode (a Kafka share group), side by side in one run.

Both passes use the same window and delivery settings (batches of 10, 4 requests in flight
per runtime, a function that takes 50 ms per request), so the only difference is how many
runtimes can work on the partition: one consumer group member owns it, while every member
of a share group takes records from it.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from confluent_kafka import Producer

from bench.kafka import wide_value
from bench.procs import BenchError, Child
from bench.report import Row, Target
from bench.runtime import (
    Context,
    function_server,
    scrape,
    start_runtime,
    stop_runtime,
    wait_for_events,
)

QUEUE_RUNTIMES = 8
FUNCTION_DELAY = 0.05
WINDOW = {"maxMessages": 10, "maxInterval": "100ms"}
DELIVERY = {"ordering": "unordered", "maxInFlight": 4}
TARGET_RATIO = 6.0


def produce_small_batches(bootstrap: str, topic: str, count: int) -> None:
    """Records as a steady producer writes them, in batches of 10: a share group hands out
    whole producer batches, so one bulk batch of thousands would go to one runtime."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "batch.num.messages": 10})
    now_ms = int(time.time() * 1000)
    for i in range(count):
        while True:
            try:
                producer.produce(topic, wide_value(i, now_ms), f"k{i % 64}".encode())
                break
            except BufferError:
                producer.poll(0.05)
        if i % 1000 == 0:
            producer.poll(0)
    if producer.flush(120) != 0:
        raise BenchError(f"could not produce {count} records to {topic} within 120 s")


def _warm_up(
    ctx: Context, topic: str, function: Child, children: list[Child], ports: list[int]
) -> None:
    """Trickle records until every runtime has read some, then forget them: a share group
    member gets its first assignment with a heartbeat (every 5 s by default), so runtimes
    that have joined may still wait that long before they take records."""
    producer = Producer({"bootstrap.servers": ctx.kafka.bootstrap, "linger.ms": 0})
    sent = 0
    deadline = time.monotonic() + 60
    while not all(scrape(port, ("sluice_consumed_total",)) for port in ports):
        if time.monotonic() > deadline:
            raise BenchError("some runtimes read nothing within 60 s of joining")
        for _ in range(10):
            producer.produce(topic, wide_value(sent, int(time.time() * 1000)))
            sent += 1
        producer.flush(10)
        time.sleep(0.2)
    wait_for_events(function, children[0], sent)
    function.ask("reset")


def _pass(ctx: Context, tag: str, records: int, runtimes: int, queue: bool) -> dict[str, float]:
    topic = ctx.kafka.create_topic(1, prefix=f"bench-{tag}")
    extra: dict[str, Any] = {"delivery": DELIVERY}
    if queue:
        extra["source"] = {
            "kafka": {
                "bootstrapServers": [ctx.kafka.bootstrap],
                "topics": [topic],
                "initialOffset": "earliest",
                "consumption": "queue",
                "shareGroup": ctx.kafka.group(f"{tag}-share"),
            }
        }
    with (
        function_server(ctx, tag, delay=FUNCTION_DELAY) as (function, url),
        contextlib.ExitStack() as stack,
    ):
        children: list[Child] = [
            stack.enter_context(
                start_runtime(ctx, f"{tag}-{index}", topic, url, WINDOW, extra=extra)
            )
            for index in range(runtimes)
        ]
        ports = [int(child.expect("metrics-port ", 60).split()[1]) for child in children]
        for child in children:
            child.expect("joined" if queue else "assigned 1", 60)
        _warm_up(ctx, topic, function, children, ports)
        cpu_before = sum(child.cpu_seconds() or 0.0 for child in children)
        produce_small_batches(ctx.kafka.bootstrap, topic, records)
        stats = wait_for_events(function, children[0], records)
        cpu_used = sum(child.cpu_seconds() or 0.0 for child in children) - cpu_before
        for child in children:
            stop_runtime(child)
    span = stats["last_at"] - stats["first_at"]
    if span <= 0:
        raise BenchError("every event arrived in one request; use more records")
    return {
        "records_per_s": stats["events"] / span,
        "delivery_s": span,
        "duplicates": float(stats["events"] - records),
        "events_per_request": stats["events"] / stats["requests"],
        "runtime_cpu_cores": cpu_used / span,  # of all its runtimes together
    }


def queue_row(ctx: Context) -> Row:
    group_records = 4_000 if ctx.quick else 16_000
    queue_records = group_records * 4  # about as long a run at the higher rate
    row = Row(
        "queue-vs-group",
        f"1 partition, a function taking {FUNCTION_DELAY * 1000:.0f} ms per request, "
        f"window maxMessages 10, unordered with 4 requests in flight per runtime: records/s "
        f"of {QUEUE_RUNTIMES} runtimes in queue mode (a share group) divided by 1 runtime in "
        f"group mode ({group_records:,} and {queue_records:,} records)",
        "ratio",
        "x group mode",
        Target(">=", TARGET_RATIO),
        also={
            "group_records_per_s": ("group mode", "records/s"),
            "queue_records_per_s": ("queue mode", "records/s"),
            "queue_duplicates": ("queue duplicates", ""),
            "queue_cpu_cores": ("queue mode runtimes' CPU", "cores"),
        },
    )
    row.details.update(
        window=WINDOW, delivery=DELIVERY, function_delay_s=FUNCTION_DELAY, partitions=1
    )
    for index in range(ctx.repeat):
        grouped = _pass(ctx, f"queue-vs-group-g{index + 1}", group_records, 1, queue=False)
        queued = _pass(
            ctx, f"queue-vs-group-q{index + 1}", queue_records, QUEUE_RUNTIMES, queue=True
        )
        figures = {
            "ratio": queued["records_per_s"] / grouped["records_per_s"],
            "group_records_per_s": grouped["records_per_s"],
            "queue_records_per_s": queued["records_per_s"],
            "queue_duplicates": queued["duplicates"],
            "group_cpu_cores": grouped["runtime_cpu_cores"],
            "queue_cpu_cores": queued["runtime_cpu_cores"],
        }
        row.runs.append(figures)
        ctx.log(
            f"  run {index + 1}/{ctx.repeat}: group mode {grouped['records_per_s']:,.0f} "
            f"records/s (1 runtime), queue mode {queued['records_per_s']:,.0f} records/s "
            f"({QUEUE_RUNTIMES} runtimes, {queued['duplicates']:.0f} duplicates, "
            f"{queued['runtime_cpu_cores']:.2f} cores): "
            f"{figures['ratio']:.1f} times"
        )
    return row
