"""A broker restart in the middle of a run loses no record.

The test runs its own broker (private data folder and ports), so restarting it disturbs
no other test.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from sluice_runtime.testing.function_server import ThreadedFunctionServer
from tests.support import ROOT, RuntimeThread, connector_manifest, produce, wait_for

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    env = {
        **os.environ,
        "SLUICE_STATE": str(tmp_path / "state"),
        "SLUICE_KAFKA_PORT": str(free_port()),
        "SLUICE_KAFKA_CONTROLLER_PORT": str(free_port()),
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
            wait_for(
                lambda: (
                    len({(e["kafkapartition"], e["kafkaoffset"]) for e in function.events()})
                    >= total
                ),
                180,
                "every record after the restart",
            )
    assert before < total // 2  # the restart really happened mid-run
