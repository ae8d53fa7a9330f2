"""Kafka's consumer perf tool (``org.apache.kafka.tools.ConsumerPerformance``, from the
kafka-tools jar): how fast this machine's broker can be consumed at all, by a JVM client
that only counts the records. The ceiling the peers row holds every contender against.

The JVM's start-up (about a second of CPU) is not consumption: records/s and CPU per
record are taken between the tool's first and last progress lines (every 200 ms), as the
runtime's are taken from its partition assignment on. The whole process's CPU per record
is kept too, as ``cpu_us_per_record_whole``. When the tool reads everything within one
progress interval (the few records of ``--quick``), the whole run's figures are reported,
flagged ``whole_run``.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from bench import ROOT
from bench.procs import BenchError, cpu_seconds

MAIN_CLASS = "org.apache.kafka.tools.ConsumerPerformance"
REPORT_MS = 200


def classpath() -> str:
    """The kafka-tools classpath (``scripts/kafka.sh tools`` fetches its jar once)."""
    result = subprocess.run(
        [str(ROOT / "scripts" / "kafka.sh"), "tools"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    if result.returncode != 0:
        raise BenchError(f"no Kafka tools classpath: {result.stderr.strip()[-300:]}")
    return result.stdout.strip().splitlines()[-1]


def perf_tool_pass(
    bootstrap: str, topic: str, records: int, group: str, tools: str, log: Path
) -> dict[str, float]:
    command = [
        "java",
        "-Xmx512M",  # as Kafka's kafka-consumer-perf-test.sh runs it
        "-XX:+UseG1GC",
        "-cp",
        tools,
        MAIN_CLASS,
        "--bootstrap-server",
        bootstrap,
        "--topic",
        topic,
        "--num-records",
        str(records),
        "--group",
        group,
        "--show-detailed-stats",
        "--reporting-interval",
        str(REPORT_MS),
        "--timeout",
        "30000",
    ]
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with log.open("ab") as err:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err, text=True, cwd=ROOT)
    assert process.stdout is not None
    column = None
    first: tuple[float, float, float] | None = None  # (monotonic, cpu seconds, records)
    last: tuple[float, float, float] | None = None
    for line in process.stdout:
        cells = [cell.strip() for cell in line.split(",")]
        if column is None:
            if "data.consumed.in.nMsg" in cells:
                column = cells.index("data.consumed.in.nMsg")
            continue
        try:
            consumed = float(cells[column])
        except (IndexError, ValueError):
            continue
        sample = (time.monotonic(), cpu_seconds(process.pid) or 0.0, consumed)
        if consumed > 0 and first is None:
            first = sample
        last = sample
    _pid, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    whole_cpu = usage.ru_utime + usage.ru_stime
    if process.returncode != 0:
        raise BenchError(
            f"Kafka's consumer perf tool failed (exit {process.returncode}); see {log}"
        )
    whole_run = False
    if first is None or last is None or last[2] <= first[2]:
        whole_run = True
        # It read everything within one progress interval (a --quick run's few records):
        # the whole run's figures, the JVM's start included, are all there is.
        counted, seconds, cpu = float(records), time.monotonic() - started, whole_cpu
    else:
        counted, seconds, cpu = last[2] - first[2], last[0] - first[0], last[1] - first[1]
    figures = {
        "records_per_s": counted / seconds,
        "cpu_us_per_record": cpu / counted * 1e6,
        "cpu_cores": cpu / seconds,
        "cpu_us_per_record_whole": whole_cpu / records * 1e6,
        "peak_rss_mb": usage.ru_maxrss / 1024,
    }
    if whole_run:
        figures["whole_run"] = 1.0
    return figures
