"""The Apache Camel peer: a Kafka → aggregate → HTTP route (bench/peers/camel/), run on
the JVM from Camel's Maven Central jars.

``camel_available`` fetches the jars into the tools cache once (``mvn
dependency:copy-dependencies`` on bench/peers/camel/pom.xml) and compiles the route with
``javac``; it says why when it cannot. Camel announces no partition assignment, and its JVM
and context take seconds of CPU to start, so its CPU per record is counted from the
function's first request to its last (the records of the first request aside).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

from bench import ROOT
from bench.procs import BenchError, cpu_seconds, proc_status_kb

if TYPE_CHECKING:
    from bench.runtime import Context

SOURCE = ROOT / "bench" / "peers" / "camel"
POM = SOURCE / "pom.xml"


def _cache() -> Path:
    version = POM.read_text().split("<camel.version>", 1)[1].split("<", 1)[0]
    base = os.environ.get("SLUICE_TOOLS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "sluice"
    )
    return Path(base) / f"camel-{version}"


def camel_available() -> str | None:
    """Why the Camel peer cannot run here, or None when it can (fetched and compiled)."""
    for tool in ("java", "javac", "mvn"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    cache = _cache()
    libs, classes = cache / "libs", cache / "classes"
    if not (libs / ".complete").exists():
        shutil.rmtree(libs, ignore_errors=True)
        libs.mkdir(parents=True)
        fetched = subprocess.run(
            ["mvn", "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
             f"-DoutputDirectory={libs}"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if fetched.returncode != 0:
            return f"fetching Camel's jars failed: {fetched.stdout[-300:]}"
        (libs / ".complete").touch()
    source = SOURCE / "KafkaToHttp.java"
    built = classes / "KafkaToHttp.class"
    if not built.exists() or built.stat().st_mtime < source.stat().st_mtime:
        classes.mkdir(parents=True, exist_ok=True)
        compiled = subprocess.run(
            ["javac", "-d", str(classes), "-cp", f"{libs}/*", str(source)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if compiled.returncode != 0:
            return f"compiling the Camel route failed: {compiled.stderr[-300:]}"
    return None


def camel_pass(
    ctx: Context, tag: str, topic: str, records: int, batch: int, interval: float
) -> dict[str, float]:
    from bench.runtime import function_server

    cache = _cache()
    with function_server(ctx, tag) as (function, url):
        command = [
            "java",
            "-Xmx512M",
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",  # errors to the log, not chatter
            "-cp",
            f"{cache / 'libs'}/*:{cache / 'classes'}",
            "KafkaToHttp",
            ctx.kafka.bootstrap,
            topic,
            ctx.kafka.group(tag),
            url,
            str(batch),
            str(int(interval * 1000)),
        ]
        log = ctx.work / f"{tag}.log"
        with log.open("ab") as err:
            process = subprocess.Popen(command, stdout=err, stderr=err, cwd=ROOT)
        try:
            first: tuple[float, int] | None = None  # (CPU seconds, events) at the first request
            last, changed = -1, time.monotonic()
            while True:
                stats = function.ask("stats")
                events = stats["events"]
                if first is None and events > 0:
                    first = (cpu_seconds(process.pid) or 0.0, events)
                if events >= records:
                    break
                now = time.monotonic()
                if events != last:
                    last, changed = events, now
                elif now - changed > 60:
                    raise BenchError(f"the Camel route stalled at {events:,} records; see {log}")
                if process.poll() is not None:
                    raise BenchError(f"the Camel route exited early; see {log}")
                time.sleep(0.05)
            cpu = cpu_seconds(process.pid) or 0.0
            peak_kb = proc_status_kb(process.pid, "VmHWM")
        finally:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
    assert first is not None
    span = stats["last_at"] - stats["first_at"]
    counted = stats["events"] - first[1]
    figures = {
        "records_per_s": stats["events"] / span,
        "cpu_us_per_record": (cpu - first[0]) / max(1, counted) * 1e6,
        "cpu_cores": (cpu - first[0]) / span,
        "events_per_request": stats["events"] / stats["requests"],
    }
    if peak_kb is not None:
        figures["peak_rss_mb"] = peak_kb / 1024
    return figures
