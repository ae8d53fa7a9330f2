"""Runs one Sluice runtime (``sluice_runtime.app.DataPlane``) for the benchmark, as
``sluice run -f`` would, with a few extras for measuring it from outside.

    python -m bench.runner -f connector.yaml [--grace S] [--profile out.prof]

Prints ``metrics-port <port>`` once /metrics listens, ``assigned <n>`` whenever the
number of assigned partitions changes (``joined`` once in the share group, in queue mode)
and, after a
SIGTERM/SIGINT shutdown, ``metrics {...}`` (a few counters) and ``stopped``. With
``--profile``, the event loop thread is profiled with cProfile (written to ``out.prof``)
and each Kafka poll thread too (``out.prof.kafka-<n>``).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import sys
from pathlib import Path
from typing import Any

import orjson

from sluice_runtime import source
from sluice_runtime.app import DataPlane, tune_garbage_collector
from sluice_runtime.config import load_connector_file
from sluice_runtime.logs import setup_logging
from sluice_runtime.metrics import Metrics


async def _announce(runtime: DataPlane) -> None:
    last = -1
    port_told = False
    joined = False
    while True:
        if not port_told and runtime.health is not None:
            print(f"metrics-port {runtime.health.port}", flush=True)
            port_told = True
        readers = runtime.share_readers
        if readers and not joined and all(reader.facts is not None for reader in readers):
            print("joined", flush=True)  # queue mode: in the share group
            joined = True
        count = len(runtime.lanes)
        if count != last:
            print(f"assigned {count}", flush=True)
            last = count
        await asyncio.sleep(0.05)


def _summary(metrics: Metrics) -> dict[str, Any]:
    wanted = {
        "sluice_consumed_total",
        "sluice_delivered_total",
        "sluice_filtered_total",
        "sluice_retries_total",
        "sluice_batches_total",
        "sluice_dropped_total",
    }
    summary: dict[str, Any] = {}
    for family in metrics.registry.collect():
        for sample in family.samples:
            if sample.name not in wanted:
                continue
            label = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            if label.startswith("topic="):
                label = ""
            key = f"{sample.name}{{{label}}}" if label else sample.name
            summary[key] = summary.get(key, 0) + sample.value
    return summary


def _profile_kafka_threads(profiles: list[cProfile.Profile]) -> None:
    """cProfile only sees the thread that enabled it: wrap each poll thread's body."""
    original = source.KafkaReader._run

    def profiled(self: source.KafkaReader) -> None:
        profile = cProfile.Profile()
        profiles.append(profile)
        profile.enable()
        try:
            original(self)
        finally:
            profile.disable()

    setattr(source.KafkaReader, "_run", profiled)  # noqa: B010 (a method, on purpose)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="run one runtime for the benchmark")
    parser.add_argument("-f", "--file", required=True, help="Connector manifest")
    parser.add_argument("--grace", type=float, default=10.0)
    parser.add_argument("--metrics-port", type=int, default=0)
    parser.add_argument("--profile", help="write cProfile statistics to this file")
    args = parser.parse_args(argv)

    connector = load_connector_file(args.file)
    setup_logging(connector.spec.runtime.log_level, json=True)
    runtime = DataPlane(
        connector,
        base_dir=Path(args.file).resolve().parent,
        metrics_port=args.metrics_port,
        grace=args.grace,
    )

    tune_garbage_collector()  # as sluice run does

    async def run() -> None:
        announce = asyncio.create_task(_announce(runtime))
        try:
            await runtime.run()
        finally:
            announce.cancel()

    thread_profiles: list[cProfile.Profile] = []
    if args.profile:
        _profile_kafka_threads(thread_profiles)
        profile = cProfile.Profile()
        profile.enable()
        try:
            asyncio.run(run())
        finally:
            profile.disable()
            profile.dump_stats(args.profile)
            for index, thread_profile in enumerate(thread_profiles):
                thread_profile.dump_stats(f"{args.profile}.kafka-{index}")
    else:
        asyncio.run(run())
    print("metrics " + orjson.dumps(_summary(runtime.metrics)).decode(), flush=True)
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
