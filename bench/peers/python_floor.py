"""The floor of any Python consumer on confluent-kafka: records read and dropped.

    python -m bench.peers.python_floor --bootstrap B --topic T --group G --records N

It consumes in batches of 1,000 with the runtime's client settings and, per record, does
the least any consumer does: checks the error and takes the value and the offset. Nothing
is delivered or committed. What it costs a record is what a Python process pays before it
can do anything with that record, so the peers rows can show how far below Kafka's own
consumer perf tool a Python consumer can go at all.

Prints ``assigned <n>`` when the group assigned partitions, then, once ``--records``
records were read, one JSON line of figures: ``records``, ``seconds``, ``cpu_seconds``
(the whole process, librdkafka's threads included) and ``peak_rss_mb``. They run from the
first batch read to the last record, so start-up and the group's join are left out, as
the perf tool's interval figures leave them out.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

from confluent_kafka import Consumer, TopicPartition

POLL_BATCH = 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--records", type=int, required=True)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument(
        "--all-fields",
        action="store_true",
        help="also take the topic, partition, timestamp, key and headers (an envelope's)",
    )
    args = parser.parse_args()
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": args.group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
            "fetch.queue.backoff.ms": 10,  # as the runtime and the hand-tuned peer
        }
    )

    def on_assign(_consumer: Consumer, partitions: list[TopicPartition]) -> None:
        print(f"assigned {len(partitions)}", flush=True)

    consumer.subscribe([args.topic], on_assign=on_assign)
    consume = consumer.consume
    read, first_read = 0, 0
    started: tuple[float, float] | None = None  # (monotonic, process CPU) at the first batch
    deadline = time.monotonic() + args.timeout
    while read < args.records and time.monotonic() < deadline:
        messages = consume(POLL_BATCH, 0.1)
        if not messages:
            continue
        if args.all_fields:
            for message in messages:
                if message.error() is None:
                    message.topic()
                    message.partition()
                    message.offset()
                    message.timestamp()
                    message.key()
                    message.value()
                    message.headers()
                    read += 1
        else:
            for message in messages:
                if message.error() is None:
                    message.value()
                    message.offset()
                    read += 1
        if started is None:  # the clocks start once the first batch is in
            started, first_read = (time.monotonic(), time.process_time()), read
    ended = (time.monotonic(), time.process_time())
    consumer.close()
    if started is None or read <= first_read:
        raise SystemExit(f"read {read} of {args.records} records within {args.timeout:.0f}s")
    counted = read - first_read
    print(
        json.dumps(
            {
                "records": counted,
                "seconds": ended[0] - started[0],
                "cpu_seconds": ended[1] - started[1],
                "read": read,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
