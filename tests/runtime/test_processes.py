"""Several runtime processes in one pod (scaling.processesPerReplica), on the real broker:
``sluice run`` supervising two runtime processes that share the pod's partitions, one
/metrics and /status for both, a killed process failing the pod without losing a record,
SIGTERM draining both."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from testkit.function_server import FunctionServer, ThreadedFunctionServer
from tests.support import (
    RuntimeProcess,
    committed,
    connector_manifest,
    free_port,
    produce,
    wait_for,
)

pytestmark = pytest.mark.integration

PARTITIONS = 4
SHARE_HEARTBEAT = 5  # the broker's group.share.heartbeat.interval.ms, in seconds


def manifest(name: str, bootstrap: str, topic: str, sink: str) -> dict[str, Any]:
    return connector_manifest(
        name,
        bootstrap,
        topic,
        sink,
        window={"maxMessages": 50, "maxInterval": "50ms"},
        delivery={"ordering": "ordered"},
        scaling={"processesPerReplica": 2},
    )


def ready(port: int) -> bool:
    try:
        return get(port, "/readyz") == b"ok\n"
    except OSError:
        return False


def get(port: int, path: str) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return bytes(response.read())


def metric(port: int, name: str) -> float:
    """A sample of the pod's /metrics, summed over its labels."""
    total = 0.0
    for line in get(port, "/metrics").decode().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rpartition(" ")[2])
    return total


_admins: dict[str, AdminClient] = {}


def owners(bootstrap: str, group: str) -> dict[str, list[int]]:
    """The group's members (client ids) and the partitions each owns."""
    admin = _admins.get(bootstrap) or _admins.setdefault(
        bootstrap, AdminClient({"bootstrap.servers": bootstrap})
    )
    description = admin.describe_consumer_groups([group])[group].result(timeout=10)
    return {
        member.client_id: sorted(tp.partition for tp in member.assignment.topic_partitions)
        for member in description.members
    }


def both_processes_own_partitions(bootstrap: str, group: str) -> bool:
    members = owners(bootstrap, group)
    by_process = [
        [parts for client, parts in members.items() if f"-p{index}-" in client]
        for index in range(2)
    ]
    return all(any(parts) for parts in by_process) and (
        sorted(p for parts in members.values() for p in parts) == list(range(PARTITIONS))
    )


def runtime_processes(supervisor: int) -> list[int]:
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    return [int(pid) for pid in children]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status").read_text()
    return "State:\tZ" not in status


def first_deliveries(function: FunctionServer) -> dict[int, list[int]]:
    """Per partition, the offsets in the order they first reached the function."""
    seen: set[tuple[int, int]] = set()
    order: dict[int, list[int]] = defaultdict(list)
    for event in function.events():
        key = (int(event["kafkapartition"]), int(event["kafkaoffset"]))
        if key not in seen:
            seen.add(key)
            order[key[0]].append(key[1])
    return order


def assert_every_record_in_order(function: FunctionServer, per_partition: int) -> None:
    order = first_deliveries(function)
    assert sorted(order) == list(range(PARTITIONS))
    for partition, offsets in order.items():
        assert offsets == list(range(per_partition)), f"partition {partition} out of order"


def produce_per_partition(bootstrap: str, topic: str, per_partition: int) -> None:
    for partition in range(PARTITIONS):
        records = ((f"k{i}", json.dumps({"p": partition, "i": i})) for i in range(per_partition))
        produce(bootstrap, topic, records, partition=partition)


def test_two_processes_share_the_partitions_and_serve_one_pod_view(
    kafka_bootstrap: str, make_topic: Callable[..., str], tmp_path: Path
) -> None:
    topic = make_topic(partitions=PARTITIONS)
    per_partition = 1_000
    produce_per_partition(kafka_bootstrap, topic, per_partition)
    with ThreadedFunctionServer(delay=0.01) as function:
        body = manifest("procs", kafka_bootstrap, topic, function.url)
        group = body["spec"]["source"]["kafka"]["consumerGroup"]
        port = free_port()
        pod = RuntimeProcess(body, tmp_path, "pod", metrics_port=port).start()
        try:
            wait_for(
                lambda: both_processes_own_partitions(kafka_bootstrap, group),
                60,
                "both runtime processes to own partitions",
            )
            wait_for(lambda: function.event_count >= PARTITIONS * per_partition, 90, "all")
            wait_for(
                lambda: json.loads(get(port, "/status"))["partitions"] == PARTITIONS,
                10,
                "/status to count the pod's partitions",
            )
            assert get(port, "/healthz") == b"ok\n"
            assert get(port, "/readyz") == b"ok\n"
            # The pod's one /metrics adds up both processes' counts.
            wait_for(
                lambda: metric(port, "sluice_delivered_total") == function.event_count,
                10,
                "/metrics to count every delivered record",
            )
            assert metric(port, "sluice_consumed_total") >= PARTITIONS * per_partition
            assert metric(port, "sluice_buffered_records") == 0
        finally:
            assert pod.terminate() == 0
    assert_every_record_in_order(function, per_partition)
    log = pod.log.read_text()
    # Whose line is whose, in the pod's shared log stream.
    assert '"process_index":0' in log
    assert '"process_index":1' in log
    assert committed(kafka_bootstrap, group, topic, PARTITIONS) == {
        partition: per_partition for partition in range(PARTITIONS)
    }


def test_sigterm_drains_every_process_and_commits_only_what_was_delivered(
    kafka_bootstrap: str, make_topic: Callable[..., str], tmp_path: Path
) -> None:
    topic = make_topic(partitions=PARTITIONS)
    per_partition = 3_000
    produce_per_partition(kafka_bootstrap, topic, per_partition)
    # 50 ms a request of 50: slow enough that SIGTERM lands with batches in flight.
    with ThreadedFunctionServer(delay=0.05) as function:
        body = manifest("procs-term", kafka_bootstrap, topic, function.url)
        group = body["spec"]["source"]["kafka"]["consumerGroup"]
        pod = RuntimeProcess(body, tmp_path, "pod", metrics_port=free_port()).start()
        assert pod.process is not None
        try:
            wait_for(
                lambda: both_processes_own_partitions(kafka_bootstrap, group),
                60,
                "both runtime processes to own partitions",
            )
            wait_for(lambda: function.event_count >= 1_000, 60, "the first records")
            workers = runtime_processes(pod.process.pid)
            assert len(workers) == 2
        finally:
            assert pod.terminate() == 0
        assert not any(alive(pid) for pid in workers)
        delivered = first_deliveries(function)
    offsets = committed(kafka_bootstrap, group, topic, PARTITIONS)
    assert sum(offsets.values()) > 0
    for partition, offset in offsets.items():
        # Everything below the committed offset reached the function, in order.
        assert delivered[partition][: max(offset, 0)] == list(range(max(offset, 0)))


def test_a_killed_process_fails_the_pod_and_a_restart_loses_nothing(
    kafka_bootstrap: str, make_topic: Callable[..., str], tmp_path: Path
) -> None:
    topic = make_topic(partitions=PARTITIONS)
    per_partition = 2_000
    produce_per_partition(kafka_bootstrap, topic, per_partition)
    # 100 ms a request of 50 (one in flight per partition): about 8 s for every record.
    with ThreadedFunctionServer(delay=0.1) as function:
        body = manifest("procs-kill", kafka_bootstrap, topic, function.url)
        group = body["spec"]["source"]["kafka"]["consumerGroup"]
        pod = RuntimeProcess(body, tmp_path, "pod", metrics_port=free_port()).start()
        assert pod.process is not None
        wait_for(
            lambda: both_processes_own_partitions(kafka_bootstrap, group),
            60,
            "both runtime processes to own partitions",
        )
        wait_for(lambda: function.event_count >= 1_000, 60, "the first records")
        victim, other = runtime_processes(pod.process.pid)
        os.kill(victim, signal.SIGKILL)
        # The pod fails loudly (the kubelet would restart it), after the other process
        # drained and committed what it delivered.
        assert pod.process.wait(60) != 0
        assert not alive(other)
        log = pod.log.read_text()
        assert "exited with -9; stopping the others" in log
        assert "Stopped runtime" in log
        # The restarted pod resumes from the committed offsets: nothing is lost.
        assert function.event_count < PARTITIONS * per_partition
        port = free_port()
        restarted = RuntimeProcess(body, tmp_path, "restarted", metrics_port=port).start()
        try:
            wait_for(lambda: ready(port), 60, "the restarted pod to be ready")
            wait_for(
                lambda: (
                    len(first_deliveries(function)) == PARTITIONS
                    and all(len(o) == per_partition for o in first_deliveries(function).values())
                ),
                120,
                "every record after the restart",
            )
        finally:
            assert restarted.terminate() == 0
    assert_every_record_in_order(function, per_partition)


def test_runtime_processes_do_not_outlive_a_killed_supervisor(
    kafka_bootstrap: str, make_topic: Callable[..., str], tmp_path: Path
) -> None:
    topic = make_topic(partitions=PARTITIONS)
    produce_per_partition(kafka_bootstrap, topic, 100)
    with ThreadedFunctionServer() as function:
        body = manifest("procs-orphans", kafka_bootstrap, topic, function.url)
        port = free_port()
        pod = RuntimeProcess(body, tmp_path, "pod", metrics_port=port).start()
        assert pod.process is not None
        wait_for(lambda: ready(port), 60, "both runtime processes to be ready")
        workers = runtime_processes(pod.process.pid)
        pod.kill()
        wait_for(lambda: not any(alive(pid) for pid in workers), 30, "the processes to exit")
    assert pod.log.read_text().count("Stopped runtime") == 2  # each drained on the way out


UDF = "def handle_message(event, context):\n    return {'seen': event['value']['i']}\n"


@pytest.mark.parametrize("shape", ["udf", "queue"])
def test_udf_workers_and_queue_mode_work_in_every_process(
    shape: str, kafka_bootstrap: str, make_topic: Callable[..., str], tmp_path: Path
) -> None:
    """Each runtime process starts its own UDF worker; in queue mode each process is its
    own member of the share group."""
    topic = make_topic(partitions=PARTITIONS)
    total = 2_000
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "batch.num.messages": 10})
    values = ((None, json.dumps({"i": i})) for i in range(total))
    with ThreadedFunctionServer(delay=0.01) as function:
        body = manifest(f"procs-{shape}", kafka_bootstrap, topic, function.url)
        if shape == "udf":
            body["spec"]["transform"] = {"udf": {"source": UDF}}
        else:
            kafka = body["spec"]["source"]["kafka"]
            kafka["consumption"] = "queue"
            kafka["shareGroup"] = f"procs-queue-{topic}"
            body["spec"]["delivery"] = {"ordering": "unordered"}
        port = free_port()
        pod = RuntimeProcess(body, tmp_path, "pod", metrics_port=port).start()
        try:
            wait_for(lambda: ready(port), 60, "both runtime processes to be ready")
            if shape == "queue":
                time.sleep(SHARE_HEARTBEAT + 1)  # a member's first assignment
            produce(kafka_bootstrap, topic, values, producer=producer)
            wait_for(lambda: len(delivered_values(function)) >= total, 90, "every record")
            wait_for(
                lambda: metric(port, "sluice_delivered_total") >= total,
                10,
                "/metrics to count every delivered record",
            )
        finally:
            assert pod.terminate() == 0
    if shape == "udf":
        assert delivered_values(function) == set(range(total))


def delivered_values(function: FunctionServer) -> set[int]:
    found = set()
    for event in function.events():
        data = event["data"]
        found.add(int(data["seen"] if "seen" in data else data["value"]["i"]))
    return found


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_DUMPABLE is Linux's")
def test_the_supervisor_keeps_its_environment_from_the_udf_workers(tmp_path: Path) -> None:
    """The supervisor holds the pod's Secrets in its environment and the UDF workers under
    it run as the same user: it makes itself non-dumpable, so that its /proc/<pid>/environ
    is not theirs to read (each runtime process does the same for itself; as root, which
    this suite runs as, the kernel lets everything through, so the flag is what is checked)."""
    script = (
        "import ctypes, sys\n"
        "from sluice_runtime.processes import Supervisor\n"
        "supervisor = Supervisor([sys.executable, '-c', 'pass'], 1, None, 5.0)\n"
        "supervisor.start()\n"
        "print(ctypes.CDLL(None).prctl(3, 0, 0, 0, 0))\n"  # PR_GET_DUMPABLE
        "supervisor.stop()\n"
    )
    ran = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "0"
