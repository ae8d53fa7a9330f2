"""A UDF runs in a worker process: it cannot end, freeze or rob the runtime, and a record
that makes it misbehave fails alone in stage transform."""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sluice_runtime.app import DataPlane
from testkit.function_server import ThreadedFunctionServer
from tests.runtime.test_failure_handling import read_all
from tests.support import (
    RuntimeProcess,
    RuntimeThread,
    committed,
    connector_manifest,
    free_port,
    produce,
    wait_for,
)

pytestmark = pytest.mark.integration

MISBEHAVING_UDF = """
import os, time

shared = {}  # returned again and again: each answer must keep its own values

def handle_message(event, context):
    what = event["value"].get("do")
    if what == "exit":
        os._exit(3)
    if what == "loop":
        while True:
            pass
    if what == "hog":
        hoard = bytearray(4 << 30)  # over the worker's memory limit
    if what == "set":
        return {"not json": {1, 2}}
    shared.update(i=event["value"]["i"], env=dict(os.environ))
    return shared
"""


@pytest.fixture
def secret_environment() -> Iterator[str]:
    """Secrets in the runtime's environment, as the operator puts them there."""
    secret = "s3cr3t-" + os.urandom(4).hex()
    names = ("SLUICE_KAFKA_PASSWORD", "SLUICE_SINK_BEARER_TOKEN")
    for name in names:
        os.environ[name] = secret
    yield secret
    for name in names:
        os.environ.pop(name, None)


def test_a_udf_that_exits_loops_or_hogs_memory_fails_that_record_alone(
    kafka_bootstrap: str, make_topic: Callable[..., str], secret_environment: str
) -> None:
    topic, dlq = make_topic(), make_topic(prefix="dlq")
    values = [f'{{"i": {i}}}' for i in range(30)]
    values[5] = '{"i": 5, "do": "exit"}'
    values[12] = '{"i": 12, "do": "loop"}'
    values[20] = '{"i": 20, "do": "hog"}'
    values[25] = '{"i": 25, "do": "set"}'
    produce(kafka_bootstrap, topic, [(b"k", value) for value in values])
    with ThreadedFunctionServer() as function:
        manifest = connector_manifest(
            "udf",
            kafka_bootstrap,
            topic,
            function.url,
            window={"maxMessages": 10, "maxInterval": "50ms"},
            transform={
                "udf": {"source": MISBEHAVING_UDF, "timeout": "500ms", "memoryLimit": "256Mi"}
            },
            delivery={"deadLetter": {"kafka": {"topic": dlq}}},
        )
        with RuntimeThread(manifest) as runtime:
            wait_for(lambda: function.event_count >= 26, 90, "the 26 good records")
            group = runtime.connector.consumer_group
            wait_for(
                lambda: committed(kafka_bootstrap, group, topic, 1) == {0: 30},
                60,
                "the partition committed past the four bad records",
            )
            assert not runtime.runtime.stopping.is_set()
        events = function.events()
    assert sorted(e["data"]["i"] for e in events) == [
        i for i in range(30) if i not in (5, 12, 20, 25)
    ]
    # The UDF saw an environment without the runtime's Secrets.
    for event in events:
        environment: dict[str, Any] = event["data"]["env"]
        assert not any(name.startswith("SLUICE_") for name in environment)
        assert secret_environment not in str(environment)
    dead = {
        int(dict(m.headers())["sluice.error.offset"]): m for m in read_all(kafka_bootstrap, dlq, 4)
    }
    assert sorted(dead) == [5, 12, 20, 25]
    reasons = {o: dict(m.headers())["sluice.error.reason"].decode() for o, m in dead.items()}
    assert all(dict(m.headers())["sluice.error.stage"] == b"transform" for m in dead.values())
    assert "exit code 3" in reasons[5]
    assert "took longer than 0.5s" in reasons[12]
    assert "MemoryError" in reasons[20] or "ended" in reasons[20]
    assert "not JSON-serialisable" in reasons[25]


def test_a_udf_that_never_finishes_importing_stops_sluice_run_with_a_message(
    tmp_path: Path, kafka_bootstrap: str, make_topic: Callable[..., str]
) -> None:
    manifest = connector_manifest(
        "stuck",
        kafka_bootstrap,
        make_topic(),
        "http://127.0.0.1:9/",
        transform={"udf": {"source": "while True:\n    pass\n"}},
    )
    runtime = RuntimeProcess(manifest, tmp_path).start()
    assert runtime.process is not None
    started = time.monotonic()
    code = runtime.process.wait(60)
    assert code == 2
    assert time.monotonic() - started < 30
    assert "did not finish importing within 10s" in runtime.log.read_text()


def test_liveness_fails_while_the_event_loop_is_stuck(
    kafka_bootstrap: str, make_topic: Callable[..., str]
) -> None:
    port = free_port()
    manifest = connector_manifest("stall", kafka_bootstrap, make_topic(), "http://127.0.0.1:9/")
    runtime = RuntimeThread(manifest)
    runtime.runtime = DataPlane(runtime.connector, metrics_port=port, grace=5, loop_stall=2)
    with runtime:
        wait_for(lambda: health(port) == 200, 30, "/healthz answering 200")
        # Something blocks the loop (as user code in the runtime process once could).
        runtime.call_on_loop(lambda: time.sleep(6))
        wait_for(lambda: health(port) == 503, 10, "/healthz answering 503")
        wait_for(lambda: health(port) == 200, 15, "/healthz answering 200 again")


def health(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return 0


FORKING_UDF = """
import os, time

def handle_message(event, context):
    what = event["value"].get("do")
    if what in ("fork", "fork-exit"):
        child = os.fork()
        if child == 0:  # a child that outlives the worker, holding its pipes
            time.sleep(60)
            os._exit(0)
        if what == "fork-exit":
            with open(event["value"]["pidFile"], "w") as out:
                out.write(str(child))
            os._exit(3)
    if what == "loop":
        while True:
            pass
    return event["value"]
"""


def alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status  # a zombie has ended, waiting to be reaped


def test_a_udf_that_forks_cannot_hold_up_the_worker_s_replacement(
    kafka_bootstrap: str, make_topic: Callable[..., str], tmp_path: Path
) -> None:
    """A UDF forks a long-lived child, then overruns its deadline or exits: the worker is
    replaced with every process it started, and the records behind go on, instead of
    every lane waiting until the child ends."""
    topic, dlq = make_topic(), make_topic(prefix="dlq")
    pid_file = tmp_path / "child.pid"
    values = [f'{{"i": {i}}}' for i in range(10)]
    values[2] = '{"i": 2, "do": "fork"}'
    values[4] = '{"i": 4, "do": "loop"}'
    values[6] = f'{{"i": 6, "do": "fork-exit", "pidFile": "{pid_file}"}}'
    produce(kafka_bootstrap, topic, [(b"k", value) for value in values])
    with ThreadedFunctionServer() as function:
        manifest = connector_manifest(
            "udf-fork",
            kafka_bootstrap,
            topic,
            function.url,
            window={"maxMessages": 1, "maxInterval": "0s"},
            transform={"udf": {"source": FORKING_UDF, "timeout": "500ms"}},
            delivery={"deadLetter": {"kafka": {"topic": dlq}}},
        )
        with RuntimeThread(manifest):
            started = time.monotonic()
            wait_for(lambda: function.event_count >= 8, 60, "the eight other records")
            took = time.monotonic() - started
    delivered = sorted(e["data"]["i"] for e in function.events())
    assert delivered == [i for i in range(10) if i not in (4, 6)]
    assert took < 30, f"the records behind waited {took:.0f}s for the forked child"
    assert not alive(int(pid_file.read_text())), "the exited worker's child lives on"
