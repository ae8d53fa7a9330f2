"""Helpers for tests that run the runtime against the real broker."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka import Consumer, Producer, TopicPartition

from sluice_runtime.app import DataPlane, new_event_loop
from sluice_runtime.config import Connector, load_connector

ROOT = Path(__file__).resolve().parents[1]


def connector_manifest(
    name: str, bootstrap: str, topic: str, sink: str, **spec: Any
) -> dict[str, Any]:
    """A Connector manifest reading ``topic`` from the start and delivering to ``sink``."""
    body: dict[str, Any] = {
        "source": {
            "kafka": {
                "bootstrapServers": [bootstrap],
                "topics": [topic],
                "initialOffset": "earliest",
                "consumerGroup": f"{name}-{topic}",
            }
        },
        "sink": {"uri": sink},
    }
    for key, value in spec.items():
        body[key] = value
    return {
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "Connector",
        "metadata": {"name": name, "namespace": "tests"},
        "spec": body,
    }


class RuntimeThread:
    """Runs a DataPlane on its own event loop thread, as a pod would run it."""

    def __init__(self, manifest: dict[str, Any], grace: float = 10.0) -> None:
        self.connector: Connector = load_connector(manifest)
        self.runtime = DataPlane(self.connector, metrics_port=None, grace=grace)
        self._loop = new_event_loop()  # the loop `sluice run` runs on
        self._thread = threading.Thread(target=self._main, daemon=True)
        self.error: BaseException | None = None

    def _main(self) -> None:
        try:
            self._loop.run_until_complete(self.runtime.run())
        except BaseException as error:  # surfaced by stop()
            self.error = error
        finally:
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

    def start(self) -> RuntimeThread:
        self._thread.start()
        return self

    def call_on_loop(self, callback: Callable[[], object]) -> None:
        """Run ``callback`` on the runtime's event loop (from the test's thread)."""
        self._loop.call_soon_threadsafe(callback)

    def wait_assigned(self, partitions: int, timeout: float = 30) -> None:
        wait_for(
            lambda: len(self.runtime.lanes) >= partitions,
            timeout,
            f"{partitions} partitions assigned",
        )

    def stop(self, timeout: float = 60) -> None:
        self._loop.call_soon_threadsafe(self.runtime.stop)
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the runtime did not stop"
        if self.error is not None:
            raise self.error

    def __enter__(self) -> RuntimeThread:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


class RuntimeProcess:
    """Runs ``sluice run -f`` as a separate process (for crash and signal tests)."""

    def __init__(
        self, manifest: dict[str, Any], tmp: Path, name: str = "runtime", metrics_port: int = 0
    ) -> None:
        self.metrics_port = metrics_port
        self.path = tmp / f"{name}.yaml"
        self.path.write_text(yaml.safe_dump(manifest))
        self.log = tmp / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> RuntimeProcess:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "sluice_cli",
                    "run",
                    "-f",
                    str(self.path),
                    "--metrics-port",
                    str(self.metrics_port),
                    "--grace",
                    "10",
                ],
                stdout=log,
                stderr=log,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        return self

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def terminate(self, timeout: float = 60) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def make_producer(bootstrap: str) -> Producer:
    return Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True})


def produce(
    bootstrap: str,
    topic: str,
    records: Iterable[tuple[bytes | str | None, bytes | str]],
    partition: int | None = None,
    producer: Producer | None = None,
) -> None:
    producer = producer or make_producer(bootstrap)
    for key, value in records:
        if partition is None:
            producer.produce(topic, key=key, value=value)
        else:
            producer.produce(topic, key=key, value=value, partition=partition)
        producer.poll(0)
    assert producer.flush(60) == 0


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        offsets = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], 10)
    finally:
        consumer.close()
    return {tp.partition: tp.offset for tp in offsets}
