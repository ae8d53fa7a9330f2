"""Crashes, rebalances and slow functions lose nothing and keep memory bounded."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from testkit.function_server import ThreadedFunctionServer
from tests.support import (
    RuntimeProcess,
    RuntimeThread,
    committed,
    connector_manifest,
    produce,
    wait_for,
)

pytestmark = pytest.mark.integration


def coordinates(events: list[dict[str, Any]]) -> list[tuple[int, int]]:
    return [(int(e["kafkapartition"]), int(e["kafkaoffset"])) for e in events]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_kill_9_then_restart_redelivers_only_uncommitted(
    kafka_bootstrap: str, make_topic: Callable[..., str], tmp_path: Path
) -> None:
    topic = make_topic(partitions=4)
    total = 20_000
    produce(kafka_bootstrap, topic, ((f"k{i % 50}", f'{{"i": {i}}}') for i in range(total)))
    # About 1 600 records/s, so the crash comes after several periodic commits.
    with ThreadedFunctionServer(delay=0.05) as function:
        manifest = connector_manifest(
            "crash",
            kafka_bootstrap,
            topic,
            function.url,
            window={"maxMessages": 20, "maxInterval": "50ms"},
        )
        group = manifest["spec"]["source"]["kafka"]["consumerGroup"]
        first = RuntimeProcess(manifest, tmp_path, "first").start()
        wait_for(lambda: function.event_count >= 5_000, 60, "a quarter of the records")
        first.kill()
        before = coordinates(function.events())
        at_crash = committed(kafka_bootstrap, group, topic, 4)

        second = RuntimeProcess(manifest, tmp_path, "second").start()
        try:
            wait_for(
                lambda: len(set(coordinates(function.events()))) >= total,
                120,
                "every record after the restart",
            )
        finally:
            assert second.terminate() == 0
        after = coordinates(function.events())[len(before) :]

    assert len(set(before) | set(after)) == total
    duplicates = set(before) & set(after)
    assert duplicates, "expected some in-flight records to be delivered again"
    # Only records the crashed process had not committed come again.
    for partition, offset in duplicates:
        assert offset >= at_crash[partition]
    assert len(duplicates) < 5_000


def test_second_runtime_joins_and_leaves_without_loss(
    kafka_bootstrap: str, make_topic: Callable[..., str]
) -> None:
    topic = make_topic(partitions=6)
    total = 30_000
    produce(kafka_bootstrap, topic, ((f"k{i % 60}", f'{{"i": {i}}}') for i in range(total)))
    with ThreadedFunctionServer(delay=0.005) as function:
        manifest = connector_manifest(
            "rebalance",
            kafka_bootstrap,
            topic,
            function.url,
            window={"maxMessages": 50, "maxInterval": "50ms"},
        )
        with RuntimeThread(manifest) as first:
            wait_for(lambda: function.event_count >= 3_000, 60, "the first records")
            second = RuntimeThread(manifest).start()
            wait_for(lambda: len(second.runtime.lanes) > 0, 60, "the second runtime's share")
            assert len(first.runtime.lanes) < 6
            wait_for(lambda: function.event_count >= 15_000, 60, "half the records")
            second.stop()
            wait_for(lambda: len(set(coordinates(function.events()))) >= total, 120, "every record")

    seen = coordinates(function.events())
    assert len(set(seen)) == total
    first_seen: dict[int, list[int]] = defaultdict(list)
    unique: set[tuple[int, int]] = set()
    for partition, offset in seen:
        if (partition, offset) not in unique:
            unique.add((partition, offset))
            first_seen[partition].append(offset)
    for offsets in first_seen.values():
        assert offsets == sorted(offsets)


def test_slow_function_pauses_partitions_and_keeps_memory_flat(
    kafka_bootstrap: str, make_topic: Callable[..., str], tmp_path: Path
) -> None:
    topic = make_topic(partitions=4)
    payload = '{"pad": "' + "x" * 10_000 + '"}'
    produce(kafka_bootstrap, topic, ((None, payload) for _ in range(10_000)))  # ~100 MB
    with ThreadedFunctionServer(delay=2.0, keep=False) as function:
        manifest = connector_manifest(
            "slow",
            kafka_bootstrap,
            topic,
            function.url,
            window={"maxMessages": 500, "maxInterval": "100ms", "maxBytes": "8Mi"},
            runtime={
                "buffer": {
                    "maxRecordsPerPartition": 600,
                    "maxBytesPerPartition": "8Mi",
                    "maxBytes": "32Mi",
                }
            },
        )
        process = RuntimeProcess(manifest, tmp_path).start()
        assert process.process is not None
        peak = 0.0
        deadline = time.monotonic() + 150
        while function.event_count < 10_000 and time.monotonic() < deadline:
            peak = max(peak, rss_mb(process.process.pid))
            time.sleep(0.2)
        assert process.terminate() == 0
    assert function.event_count >= 10_000
    assert "Paused partition" in process.log.read_text()
    assert peak < 200, f"peak RSS {peak:.0f} MB with 100 MB waiting"


def test_a_full_process_stops_reading_without_pausing_or_leaving_the_group(
    kafka_bootstrap: str, make_topic: Callable[..., str]
) -> None:
    """The process bound throttles reading instead of pausing partitions: nothing that
    librdkafka fetched is thrown away, the consumer stays in its group however long the
    function is slow, and every record arrives."""
    topic = make_topic(partitions=4)
    produce(kafka_bootstrap, topic, ((f"k{i}", f'{{"n": {i}}}') for i in range(12_000)))
    with ThreadedFunctionServer(delay=0.3, keep=False) as function:
        manifest = connector_manifest(
            "throttled",
            kafka_bootstrap,
            topic,
            function.url,
            window={"maxMessages": 100, "maxInterval": "50ms"},
            runtime={"buffer": {"maxRecords": 2_000, "maxRecordsPerPartition": 100_000}},
        )
        with RuntimeThread(manifest) as runtime:
            metrics = runtime.runtime.metrics
            wait_for(lambda: metrics.reading_throttled._value.get() == 1, 30, "throttled")
            most = 0.0
            for _ in range(20):  # 4 s with the process full and the function slow
                held = metrics.registry.get_sample_value("sluice_buffered_records")
                most = max(most, held or 0.0)
                time.sleep(0.2)
            assert metrics.paused._value.get() == 0
            # At most one poll batch past the bound, plus a trickle of single records.
            assert most <= 2_000 + 2_000 + 100, f"{most:.0f} records held"
            wait_for(lambda: function.event_count >= 12_000, 120, "every record")
            assert metrics.reading_throttled._value.get() == 0
            assert len(runtime.runtime.lanes) == 4  # never lost its partitions
