"""What the runtime writes to its log while a broker is down: JSON lines only, and not a
flood."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest

from sluice_runtime.logs import mark_process, setup_logging
from tests.support import RuntimeProcess, connector_manifest, free_port

pytestmark = pytest.mark.integration


def test_a_broker_that_is_down_gives_a_few_json_lines_not_a_flood(tmp_path: Path) -> None:
    # Nothing listens on these ports: the consumer and the DLQ producer both fail to connect.
    source, dead_letter = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    manifest = connector_manifest(
        "down",
        source,
        "orders",
        "http://127.0.0.1:9/",
        delivery={"deadLetter": {"kafka": {"topic": "dlq", "bootstrapServers": [dead_letter]}}},
    )
    runtime = RuntimeProcess(manifest, tmp_path).start()
    time.sleep(16)
    assert runtime.terminate() == 0
    lines = runtime.log.read_text().splitlines()
    entries = [json.loads(line) for line in lines]  # every line is a JSON object
    troubles = [e for e in entries if e["level"] in ("warning", "error")]
    # librdkafka reports each refused connection many times a second; what reaches the
    # log is a few lines per kind and 10 s, with a count of what was held back.
    assert troubles, "the outage is reported"
    assert len(troubles) <= 24, [e["message"] for e in troubles]
    assert any("similar messages held back" in e["message"] for e in troubles)
    assert any(e["logger"] == "sluice.deadletter" for e in troubles)


def test_plain_lines_say_which_of_a_pods_processes_wrote_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        setup_logging("info", json=False)
        logging.getLogger("sluice.lane").warning("before the process is known")
        mark_process(1)
        logging.getLogger("sluice.lane").warning("lane %s stalled", "t-0")
        lines = capsys.readouterr().err.splitlines()
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    assert lines[0].endswith(" WARNING sluice.lane: before the process is known")
    assert lines[1].endswith(" WARNING sluice.lane [process 1]: lane t-0 stalled")
