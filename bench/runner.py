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
import threading
import time
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from sluice_runtime import source
from sluice_runtime.app import DataPlane, run_runtime, tune_garbage_collector
from sluice_runtime.config import Connector, load_connector_file
from sluice_runtime.logs import setup_logging
from sluice_runtime.metrics import Metrics
from sluice_runtime.processes import Supervisor, run_supervised


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
    return _summary_of(metrics.registry)


def _summary_of(registry: CollectorRegistry) -> dict[str, Any]:
    wanted = {
        "sluice_consumed_total",
        "sluice_delivered_total",
        "sluice_filtered_total",
        "sluice_retries_total",
        "sluice_batches_total",
        "sluice_dropped_total",
    }
    summary: dict[str, Any] = {}
    for family in registry.collect():
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


def _assigned(admin: AdminClient, group: str, members: int) -> int:
    """Partitions the group has assigned, once all the pod's consumers are members (0
    before): the bench measures from there. Asked of the broker, as /status counts them
    only every few seconds."""
    try:
        description = admin.describe_consumer_groups([group])[group].result(timeout=5)
    except KafkaException:
        return 0
    owned = [len(member.assignment.topic_partitions) for member in description.members]
    if len(owned) < members or not all(owned):
        return 0  # not every consumer has its share yet: the group is still rebalancing
    return sum(owned)


def _run_processes(path: str, connector: Connector, metrics_port: int, grace: float) -> int:
    """processesPerReplica > 1: supervise the pod's runtime processes as ``sluice run``
    does. ``assigned`` comes from the broker; the ``metrics`` line is the pod's merged
    /metrics when SIGTERM came."""
    scaling = connector.spec.scaling
    kafka = connector.spec.source.kafka
    admin = AdminClient({"bootstrap.servers": ",".join(kafka.bootstrap_servers)})
    command = [sys.executable, "-m", "sluice_cli", "run", "-f", path]
    command += ["--metrics-port", "0", "--grace", str(grace)]
    last: dict[str, Any] = {}

    def announce(supervisor: Supervisor) -> None:
        assert supervisor.server is not None
        print(f"metrics-port {supervisor.server.port}", flush=True)
        told = -1
        while not supervisor.stopping.is_set():
            assigned = _assigned(admin, connector.consumer_group, scaling.consumers_per_pod)
            if assigned != told:
                told = assigned
                print(f"assigned {told}", flush=True)
            last.update(_summary_of_text(supervisor.metrics()[1].decode()))
            # Often until the group settles; then seldom, not to load what is measured.
            time.sleep(0.1 if told == 0 else 1.0)

    def start(supervisor: Supervisor) -> None:
        threading.Thread(target=announce, args=(supervisor,), daemon=True).start()

    def last_scrape(supervisor: Supervisor) -> None:
        last.update(_summary_of_text(supervisor.metrics()[1].decode()))

    code = run_supervised(
        command,
        scaling.processes_per_replica,
        metrics_port,
        grace,
        on_start=start,
        before_stop=last_scrape,
    )
    print("metrics " + orjson.dumps(last).decode(), flush=True)
    print("stopped", flush=True)
    return code


def _summary_of_text(text: str) -> dict[str, Any]:
    registry = CollectorRegistry(auto_describe=False)
    families = list(text_string_to_metric_families(text))

    class Fixed(Collector):
        def collect(self) -> list[Metric]:
            return families

    registry.register(Fixed())
    return _summary_of(registry)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="run one runtime for the benchmark")
    parser.add_argument("-f", "--file", required=True, help="Connector manifest")
    parser.add_argument("--grace", type=float, default=10.0)
    parser.add_argument("--metrics-port", type=int, default=0)
    parser.add_argument("--profile", help="write cProfile statistics to this file")
    args = parser.parse_args(argv)

    connector = load_connector_file(args.file)
    setup_logging(connector.spec.runtime.log_level, json=True)
    processes = connector.spec.scaling.processes_per_replica
    if processes > 1:
        if args.profile:
            parser.error("--profile profiles one runtime process: use processesPerReplica 1")
        return _run_processes(args.file, connector, args.metrics_port, args.grace)
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
            run_runtime(run())
        finally:
            profile.disable()
            profile.dump_stats(args.profile)
            for index, thread_profile in enumerate(thread_profiles):
                thread_profile.dump_stats(f"{args.profile}.kafka-{index}")
    else:
        run_runtime(run())
    print("metrics " + orjson.dumps(_summary(runtime.metrics)).decode(), flush=True)
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
