"""A broker restart in the middle of a run loses no record, and a dead-letter broker that
is away blocks the partition instead of losing the failed record.

These tests run their own broker (private data folder and ports), so stopping it disturbs
no other test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, NewTopic

from testkit.function_server import FunctionServer, ThreadedFunctionServer
from tests.support import (
    ROOT,
    RuntimeThread,
    committed,
    connector_manifest,
    free_port,
    produce,
    wait_for,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    env = {
        **os.environ,
        "SLUICE_STATE": str(tmp_path / "state"),
        "SLUICE_KAFKA_PORT": str(free_port()),
        "SLUICE_KAFKA_CONTROLLER_PORT": str(free_port()),
        "SLUICE_KAFKA_SASL_PORT": str(free_port()),
    }
    up = subprocess.run(
        [ROOT / "scripts/kafka.sh", "up"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert up.returncode == 0, up.stderr
    yield up.stdout.strip(), env
    subprocess.run(
        [ROOT / "scripts/kafka.sh", "down"], env=env, capture_output=True, timeout=60, check=False
    )


def distinct(function: FunctionServer) -> int:
    """Records delivered at least once."""
    return len({(e["kafkapartition"], e["kafkaoffset"]) for e in function.events()})


def test_broker_restart_mid_run_loses_nothing(private_broker: tuple[str, dict[str, str]]) -> None:
    bootstrap, env = private_broker
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic("restart", num_partitions=2)])["restart"].result(30)
    total = 6_000
    produce(bootstrap, "restart", ((f"k{i % 10}", f'{{"i": {i}}}') for i in range(total // 2)))
    with ThreadedFunctionServer(delay=0.02) as function:
        manifest = connector_manifest(
            "restart",
            bootstrap,
            "restart",
            function.url,
            window={"maxMessages": 20, "maxInterval": "20ms"},
        )
        with RuntimeThread(manifest):
            wait_for(lambda: function.event_count >= 1_000, 60, "the first records")
            before = len(function.events())
            for step in ("down", "up"):
                result = subprocess.run(
                    [ROOT / "scripts/kafka.sh", step],
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=180,
                    check=False,
                )
                assert result.returncode == 0, result.stderr
            # Records written after the restart come through too.
            produce(
                bootstrap,
                "restart",
                ((f"k{i % 10}", f'{{"i": {i}}}') for i in range(total // 2, total)),
            )
            wait_for(lambda: distinct(function) >= total, 180, "every record after the restart")
    assert before < total // 2  # the restart really happened mid-run


def test_unreachable_dead_letter_broker_blocks_until_it_returns(
    private_broker: tuple[str, dict[str, str]],
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
) -> None:
    """The DLQ lives on its own (private) broker, which is down when a record fails."""
    dlq_bootstrap, env = private_broker
    admin = AdminClient({"bootstrap.servers": dlq_bootstrap})
    admin.create_topics([NewTopic("dlq", num_partitions=1)])["dlq"].result(30)
    kafka = ROOT / "scripts/kafka.sh"
    subprocess.run([kafka, "down"], env=env, capture_output=True, timeout=60, check=True)

    topic = make_topic()
    records = [(None, f'{{"i": {i}}}') for i in range(10)]
    records[4] = (None, '{"i": 4, "poison": true}')
    produce(kafka_bootstrap, topic, records)

    def reject(events: list[Any]) -> tuple[int, dict[str, str], bytes] | None:
        poisoned = any(e["data"]["value"].get("poison") for e in events)
        return (400, {}, b"bad") if poisoned else None

    with ThreadedFunctionServer(behaviour=reject) as function:
        manifest = connector_manifest(
            "dlq-away",
            kafka_bootstrap,
            topic,
            function.url,
            window={"maxMessages": 10, "maxInterval": "50ms"},
            delivery={
                "retry": {"maxAttempts": 2, "initialDelay": "10ms", "maxDelay": "50ms"},
                "deadLetter": {"kafka": {"topic": "dlq", "bootstrapServers": [dlq_bootstrap]}},
            },
        )
        with RuntimeThread(manifest) as runtime:
            group = runtime.connector.consumer_group
            wait_for(lambda: function.event_count >= 9, 30, "the nine good records")
            time.sleep(3)
            assert committed(kafka_bootstrap, group, topic, 1)[0] <= 4

            subprocess.run([kafka, "up"], env=env, capture_output=True, timeout=180, check=True)
            wait_for(
                lambda: committed(kafka_bootstrap, group, topic, 1)[0] == 10,
                120,
                "the commit once the dead-letter broker is back",
            )
    consumer = Consumer(
        {"bootstrap.servers": dlq_bootstrap, "group.id": "check", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe(["dlq"])
    try:
        message = None
        for _ in range(60):
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                break
        assert message is not None
        assert dict(message.headers() or [])["sluice.error.offset"] == b"4"
    finally:
        consumer.close()


def test_partitions_lost_to_a_session_timeout_are_read_again(
    private_broker: tuple[str, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A broker that stops answering for longer than the session makes librdkafka declare
    the partitions lost; once it is back they are assigned again and read from the last
    commit, including partitions that were paused by backpressure when they were lost
    (librdkafka keeps that pause through the reassignment unless it is lifted)."""
    bootstrap, env = private_broker
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic("lost", num_partitions=2)])["lost"].result(30)
    total = 3_000
    produce(bootstrap, "lost", ((f"k{i % 10}", f'{{"i": {i}}}') for i in range(total // 2)))

    from sluice_runtime import source

    settings = source.consumer_settings
    monkeypatch.setattr(
        source,
        "consumer_settings",
        lambda *args: {**settings(*args), "session.timeout.ms": 6000, "heartbeat.interval.ms": 500},
    )
    broker_pid = int((Path(env["SLUICE_STATE"]) / "kafka" / "broker.pid").read_text())
    with ThreadedFunctionServer(delay=0.5) as function:
        manifest = connector_manifest(
            "lost",
            bootstrap,
            "lost",
            function.url,
            window={"maxMessages": 10, "maxInterval": "10ms"},
            # Small per-partition buffers: the partitions pause and resume all the time.
            runtime={"buffer": {"maxRecordsPerPartition": 40}},
        )
        with RuntimeThread(manifest) as runtime:
            # A slow function: both partitions fill their buffers and are paused.
            paused = runtime.runtime.metrics.paused
            wait_for(lambda: paused._value.get() == 2, 60, "both partitions paused")
            os.kill(broker_pid, signal.SIGSTOP)
            try:
                wait_for(lambda: "Lost partitions" in caplog.text, 60, "the session to expire")
            finally:
                os.kill(broker_pid, signal.SIGCONT)
            function.delay = 0.0
            produce(
                bootstrap,
                "lost",
                ((f"k{i % 10}", f'{{"i": {i}}}') for i in range(total // 2, total)),
            )
            wait_for(lambda: distinct(function) >= total, 120, "every record once back")
