"""The bodies row: writing pass-through records into a request body, per batch format,
in-process (run from `make bench`, never from tests)."""

from __future__ import annotations

import time

from bench.kafka import KEYS, wide_value
from bench.microbench import calls_per_second
from sluice_runtime.payload import build_request
from sluice_runtime.records import Record

BATCH = 100


def bench_bodies(formats: tuple[str, ...], seconds: float) -> dict[str, float]:
    """µs a record for each format: a batch of one partition's records, as a lane sends it,
    their timestamps a few milliseconds apart as a busy topic's are."""
    now = int(time.time() * 1000)
    records = [
        Record("bench-peers", 2, 5000 + i, now + i // 20, KEYS[i % len(KEYS)], wide_value(i, now))
        for i in range(BATCH)
    ]
    costs = {}
    for name in formats:

        def write(batch: list[Record], name: str = name) -> None:
            build_request(batch, name, "kafka://bench/bench-peers")

        costs[name] = 1e6 / (calls_per_second(write, records, seconds, batch=10) * BATCH)
    return costs
