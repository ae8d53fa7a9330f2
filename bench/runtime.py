"""Rows that run the whole data plane: Kafka → runtime process → function process.

Each pass starts a fresh function server process and a fresh runtime process (bench.runner)
with its own consumer group, so every pass reads the topic from the start.
"""

from __future__ import annotations

import contextlib
import io
import json
import pstats
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.function import percentiles_ms
from bench.kafka import (
    FloorConsumer,
    Kafka,
    PacedProducer,
    large_value,
    small_value,
    wide_value,
)
from bench.procs import BenchError, Child
from bench.report import Row, Target

PARTITIONS = 8
# Seconds of traffic before latency is measured. With 0.5 s the first run after a broker
# start had a p99 of 70-200 ms and the next runs 5-12 ms, each with a fresh runtime and
# function: the broker (a JVM) warms up its low-latency produce and fetch paths. 3 s
# brought the first run to the others' level.
LATENCY_WARM_UP = 3.0
# Before the counted runs, up to this many uncounted passes of half a run each, until one
# where a bare consumer (the consume floor) had a p99 under LATENCY_WARM_FLOOR_MS. A broker
# started minutes before held records for 1.5-5 s in the first one or two runs even after
# the 3 s above (the floor with them): its JIT was still compiling the paths this row uses.
LATENCY_BROKER_WARM_UPS = 3
LATENCY_WARM_FLOOR_MS = 20.0


@dataclass
class Context:
    kafka: Kafka
    out: Path
    log: Callable[[str], None]
    quick: bool
    repeat: int
    profile: bool

    @property
    def work(self) -> Path:
        path = self.out / "work"
        path.mkdir(parents=True, exist_ok=True)
        return path


def manifest(
    name: str,
    bootstrap: str,
    topic: str,
    group: str,
    sink: str,
    window: dict[str, Any],
    extra: dict[str, Any] | None = None,
    source_extra: dict[str, Any] | None = None,
    sink_format: str = "cloudevents-batch",
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "Connector",
        "metadata": {"name": name, "namespace": "bench"},
        "spec": {
            "source": {
                "kafka": {
                    "bootstrapServers": [bootstrap],
                    "topics": [topic],
                    "consumerGroup": group,
                    "initialOffset": "earliest",
                }
            },
            "window": window,
            "sink": {"uri": sink, "format": sink_format},
            "delivery": {"ordering": "ordered"},
        },
    }
    body["spec"].update(extra or {})
    body["spec"]["source"]["kafka"].update(source_extra or {})
    return body


@contextlib.contextmanager
def function_server(ctx: Context, tag: str, delay: float = 0.0) -> Iterator[tuple[Child, str]]:
    child = Child("function", "bench.function", ["--delay", str(delay)], ctx.work / f"{tag}.fn.log")
    try:
        url = child.expect("listening ", 30).split()[1]
        yield child, url
    finally:
        child.stop(timeout=5)


def start_runtime(
    ctx: Context,
    tag: str,
    topic: str,
    url: str,
    window: dict[str, Any],
    grace: float = 10.0,
    profile: Path | None = None,
    extra: dict[str, Any] | None = None,
    source_extra: dict[str, Any] | None = None,
    sink_format: str = "cloudevents-batch",
) -> Child:
    group = ctx.kafka.group(tag)
    path = ctx.work / f"{tag}.json"
    body = manifest(
        tag, ctx.kafka.bootstrap, topic, group, url, window, extra, source_extra, sink_format
    )
    path.write_text(json.dumps(body))
    args = ["-f", str(path), "--grace", str(grace)]
    if profile is not None:
        args += ["--profile", str(profile)]
    return Child("runtime", "bench.runner", args, ctx.work / f"{tag}.runtime.log")


def scrape(port: int, names: tuple[str, ...]) -> dict[str, float]:
    """Unlabelled samples of the runtime's /metrics (summed over labels)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        base = name.split("{", 1)[0]
        if base in names:
            values[base] = values.get(base, 0.0) + float(value)
    return values


def wait_for_events(
    function: Child, runtime: Child, want: int, stall: float = 30.0
) -> dict[str, Any]:
    """Poll the function until it counted ``want`` events; fail when nothing moves."""
    last, changed = -1, time.monotonic()
    while True:
        stats = function.ask("stats")
        if stats["events"] >= want:
            return stats
        now = time.monotonic()
        if stats["events"] != last:
            last, changed = stats["events"], now
        elif now - changed > stall:
            raise BenchError(
                f"delivery stalled at {last:,}/{want:,} events for {stall:.0f}s; "
                f"runtime log {runtime.log}:\n{runtime.log_tail()}"
            )
        if not runtime.alive():
            raise BenchError(f"the runtime exited early; log {runtime.log}:\n{runtime.log_tail()}")
        time.sleep(0.1)


def stop_runtime(runtime: Child, timeout: float = 60.0) -> dict[str, Any]:
    code = runtime.stop(timeout=timeout)
    if code != 0:
        raise BenchError(
            f"the runtime exited with {code}; log {runtime.log}:\n{runtime.log_tail()}"
        )
    summary: dict[str, Any] = json.loads(runtime.expect("metrics ", 5).split(" ", 1)[1])
    return summary


def throughput_pass(
    ctx: Context,
    tag: str,
    topic: str,
    records: int,
    window: dict[str, Any],
    profile: Path | None = None,
    extra: dict[str, Any] | None = None,
    source_extra: dict[str, Any] | None = None,
    *,
    sink_format: str = "cloudevents-batch",
    partitions: int = PARTITIONS,
) -> tuple[dict[str, float], dict[str, Any]]:
    with function_server(ctx, tag) as (function, url):
        started = time.time()
        with start_runtime(
            ctx,
            tag,
            topic,
            url,
            window,
            profile=profile,
            extra=extra,
            source_extra=source_extra,
            sink_format=sink_format,
        ) as runtime:
            runtime.expect(f"assigned {partitions}", 60)
            cpu_assigned = runtime.cpu_seconds() or 0.0
            fn_cpu_assigned = function.cpu_seconds() or 0.0
            stats = wait_for_events(function, runtime, records)
            peak = runtime.peak_rss_mb()
            cpu_used = (runtime.cpu_seconds() or 0.0) - cpu_assigned
            fn_cpu_used = (function.cpu_seconds() or 0.0) - fn_cpu_assigned
            summary = stop_runtime(runtime)
    span = stats["last_at"] - stats["first_at"]
    if span <= 0:
        raise BenchError("every event arrived in one request; use more records")
    figures = {
        "records_per_s": stats["events"] / span,
        "requests_per_s": stats["requests"] / span,
        "events_per_request": stats["events"] / stats["requests"],
        "delivery_s": span,
        "first_delivery_after_s": stats["first_at"] - started,
        "runtime_cpu_cores": cpu_used / span,
        "runtime_cpu_us_per_record": cpu_used / stats["events"] * 1e6,
        "function_cpu_cores": fn_cpu_used / span,
        "duplicates": float(stats["events"] - records),
    }
    if peak is not None:
        figures["peak_rss_mb"] = peak
    return figures, summary


def _progress(ctx: Context, tag: str, figures: dict[str, float]) -> None:
    ctx.log(
        f"  {tag}: {figures['records_per_s']:,.0f} records/s, "
        f"{figures['requests_per_s']:,.0f} requests/s "
        f"({figures['events_per_request']:.1f} events/request), "
        f"peak RSS {figures.get('peak_rss_mb', 0):.0f} MB, "
        f"runtime CPU {figures['runtime_cpu_cores']:.2f} cores "
        f"({figures['runtime_cpu_us_per_record']:.1f} µs/record), "
        f"function CPU {figures['function_cpu_cores']:.2f} cores"
    )


THROUGHPUT_ALSO = {
    "requests_per_s": ("requests/s", ""),
    "events_per_request": ("events/request", ""),
    "peak_rss_mb": ("peak RSS", "MB"),
    "runtime_cpu_cores": ("runtime CPU", "cores"),
    "runtime_cpu_us_per_record": ("", "µs CPU/record"),
}


def throughput_row(
    ctx: Context,
    name: str,
    description: str,
    records: int,
    window: dict[str, Any],
    target: Target | None,
    profile: bool = False,
    extra: dict[str, Any] | None = None,
) -> Row:
    """``extra``: more of the Connector's spec (a transform, say)."""
    row = Row(name, description, "records_per_s", "records/s", target, also=THROUGHPUT_ALSO)
    row.details["window"] = window
    if extra:
        row.details["spec"] = extra
    row.details["records"] = records
    row.details["partitions"] = PARTITIONS
    topic = ctx.kafka.create_topic(PARTITIONS, prefix=f"bench-{name}")
    ctx.log(f"  producing {records:,} keyed records to {topic} ({PARTITIONS} partitions)")
    produced = ctx.kafka.produce_bulk(topic, records, wide_value)
    row.details["produce"] = {
        "seconds": round(produced.seconds, 2),
        "records_per_s": round(produced.rate),
        "mean_value_bytes": round(produced.value_bytes, 1),
    }
    ctx.log(
        f"  produced in {produced.seconds:.1f}s ({produced.rate:,.0f}/s, "
        f"mean value {produced.value_bytes:.0f} bytes)"
    )
    summaries = []
    for index in range(ctx.repeat):
        figures, summary = throughput_pass(
            ctx, f"{name}-{index + 1}", topic, records, window, extra=extra
        )
        row.runs.append(figures)
        summaries.append(summary)
        _progress(ctx, f"run {index + 1}/{ctx.repeat}", figures)
    row.details["runtime_metrics"] = summaries
    if profile:
        row.details["profile"] = profile_pass(ctx, name, topic, records, window)
    return row


def profile_pass(
    ctx: Context, name: str, topic: str, records: int, window: dict[str, Any]
) -> dict[str, Any]:
    """One more pass with the runtime under cProfile (slower; not counted in the row)."""
    path = ctx.out / f"profile-{name}.prof"
    ctx.log(f"  profiling one extra pass (cProfile in the runtime) → {path}")
    figures, _summary = throughput_pass(ctx, f"{name}-profile", topic, records, window, path)
    _progress(ctx, "profiled", figures)
    text = io.StringIO()
    text.write(
        f"cProfile of the runtime process during {name} ({records:,} records, window "
        f"{window}); under the profiler: {figures['records_per_s']:,.0f} records/s.\n\n"
    )
    sections = [("event loop thread", path)] + [
        (f"Kafka poll thread {p.name.rsplit('-', 1)[1]}", p)
        for p in sorted(path.parent.glob(path.name + ".kafka-*"))
    ]
    for title, stats_path in sections:
        for order in ("tottime", "cumulative"):
            text.write(f"==== {title}: top 25 by {order} ====\n")
            stats = pstats.Stats(str(stats_path), stream=text)
            stats.strip_dirs().sort_stats(order).print_stats(25)
    report = ctx.out / f"profile-{name}.txt"
    report.write_text(text.getvalue())
    ctx.log(f"  profile report: {report}")
    return {"report": str(report), "records_per_s_under_profiler": figures["records_per_s"]}


def latency_row(ctx: Context) -> Row:
    rate = 1000.0
    seconds = 3.0 if ctx.quick else 10.0
    window = {"maxMessages": 100, "maxInterval": "0s"}
    row = Row(
        "latency-realtime",
        f"end-to-end latency (record timestamp → function receipt) at maxInterval 0s, "
        f"{rate:,.0f} records/s for {seconds:.0f}s, producer linger.ms=0",
        "p99_ms",
        "ms",
        Target("<", 20.0),
        also={
            "p50_ms": ("p50", "ms"),
            "p95_ms": ("p95", "ms"),
            "max_ms": ("max", "ms"),
            "floor_p99_ms": ("consume floor p99", "ms"),
            "events_per_request": ("events/request", ""),
        },
    )
    row.details.update(window=window, rate=rate, seconds=seconds, partitions=PARTITIONS)
    producer = PacedProducer(ctx.kafka.bootstrap)
    sent = 0
    passes = [(f"warm-up {n + 1}", seconds / 2) for n in range(LATENCY_BROKER_WARM_UPS)]
    passes += [(f"run {n + 1}/{ctx.repeat}", seconds) for n in range(ctx.repeat)]
    for label, paced_seconds in passes:
        counted = label.startswith("run")
        if not counted and row.details.get("broker_warm"):
            continue
        tag = f"latency-realtime-{label.replace(' ', '-').replace('/', '-of-')}"
        # A fresh topic per run: a new group reading from the start sees only this run.
        topic = ctx.kafka.create_topic(PARTITIONS, prefix="bench-latency")
        floor = FloorConsumer(ctx.kafka.bootstrap, topic)
        try:
            with (
                function_server(ctx, tag) as (function, url),
                start_runtime(ctx, tag, topic, url, window) as runtime,
            ):
                runtime.expect(f"assigned {PARTITIONS}", 60)
                floor.start()
                # Warm up (LATENCY_WARM_UP): connections, fetch sessions, each lane, the broker.
                already = function.ask("stats")["events"]
                warm = producer.run(topic, rate, LATENCY_WARM_UP, wide_value, sent)
                sent += warm.records
                wait_for_events(function, runtime, already + warm.records)
                time.sleep(0.3)
                function.ask("reset")
                since_ms = time.time() * 1000
                paced = producer.run(topic, rate, paced_seconds, wide_value, sent)
                sent += paced.records
                stats = wait_for_events(function, runtime, paced.records)
                latency = function.ask("latency")
                summary = stop_runtime(runtime)
            floor_ms = percentiles_ms(floor.finish(warm.records + paced.records, since_ms))
        finally:
            floor.close()
        figures = {
            "floor_p50_ms": floor_ms["p50"] or 0.0,
            "floor_p99_ms": floor_ms["p99"] or 0.0,
            "p50_ms": latency["p50"],
            "p95_ms": latency["p95"],
            "p99_ms": latency["p99"],
            "max_ms": latency["max"],
            "samples": float(latency["count"]),
            "produced_per_s": paced.rate,
            "events_per_request": stats["events"] / stats["requests"],
            # A retried request waits retry.initialDelay (1 s): it shows in the p99 at once.
            "retries": float(
                sum(v for k, v in summary.items() if k.startswith("sluice_retries_total"))
            ),
        }
        if not counted:
            # Uncounted: the broker is warm once a bare consumer reads within the target.
            warm = figures["floor_p99_ms"] < LATENCY_WARM_FLOOR_MS
            row.details["broker_warm"] = warm
            ctx.log(
                f"  broker {label}: consume floor p99 {figures['floor_p99_ms']:.1f} ms "
                f"(Sluice {figures['p99_ms']:.1f} ms, not counted)"
                + ("" if warm else f"; the broker is not warm yet (≥ {LATENCY_WARM_FLOOR_MS} ms)")
            )
            continue
        row.runs.append(figures)
        ctx.log(
            f"  {label}: p50 {figures['p50_ms']:.1f} ms, "
            f"p95 {figures['p95_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms, "
            f"max {figures['max_ms']:.1f} ms over {latency['count']:,} events "
            f"({paced.rate:,.0f} records/s produced, "
            f"{figures['events_per_request']:.2f} events/request, "
            f"{figures['retries']:.0f} retries); a bare consumer of the same records, "
            f"at the same time: "
            f"p50 {figures['floor_p50_ms']:.1f} ms, p99 {figures['floor_p99_ms']:.1f} ms"
        )
    return row


def memory_row(
    ctx: Context,
    records: int | None = None,
    seconds: float | None = None,
    *,
    name: str = "memory-slow-sink",
    large: bool = False,
) -> Row:
    """Peak RSS while records wait for a slow function: small records (1,000,000 of ~90
    bytes) or, with ``large``, 20,000 of ~50 KB."""
    records = records or (
        (5_000 if large else 200_000) if ctx.quick else (20_000 if large else 1_000_000)
    )
    seconds = seconds or (10.0 if ctx.quick else 30.0)
    window = {"maxMessages": 100, "maxInterval": "100ms"}
    kind = "~50 KB" if large else "small"
    row = Row(
        name,
        f"peak RSS of the runtime with {records:,} {kind} records waiting and a function "
        f"that takes 1 s per request, over {seconds:.0f}s",
        "peak_rss_mb",
        "MB",
        Target("<", 256.0),
        also={
            "delivered": ("delivered", "records"),
            "requests": ("requests", ""),
            "rss_end_mb": ("RSS at end", "MB"),
            "buffered_records": ("buffered", "records"),
        },
    )
    row.details.update(window=window, records=records, seconds=seconds, partitions=PARTITIONS)
    topic = ctx.kafka.create_topic(PARTITIONS, prefix=f"bench-{name}")
    ctx.log(f"  producing {records:,} {kind} records to {topic}")
    produced = ctx.kafka.produce_bulk(topic, records, large_value if large else small_value)
    row.details["produce"] = {
        "seconds": round(produced.seconds, 2),
        "records_per_s": round(produced.rate),
        "mean_value_bytes": round(produced.value_bytes, 1),
    }
    ctx.log(f"  produced in {produced.seconds:.1f}s ({produced.rate:,.0f}/s)")
    timelines = []
    for index in range(ctx.repeat):
        tag = f"{name}-{index + 1}"
        with (
            function_server(ctx, tag, delay=1.0) as (function, url),
            start_runtime(ctx, tag, topic, url, window, grace=2.0) as runtime,
        ):
            port = int(runtime.expect("metrics-port ", 60).split()[1])
            runtime.expect(f"assigned {PARTITIONS}", 60)
            began = time.monotonic()
            timeline: list[tuple[float, float | None]] = []
            while (elapsed := time.monotonic() - began) < seconds:
                if not runtime.alive():
                    raise BenchError(f"the runtime exited early:\n{runtime.log_tail()}")
                timeline.append((round(elapsed, 1), runtime.rss_mb()))
                time.sleep(1.0)
            stats = function.ask("stats")
            peak = runtime.peak_rss_mb()
            rss_end = runtime.rss_mb()
            held = scrape(
                port,
                ("sluice_buffered_records", "sluice_buffered_bytes", "sluice_paused_partitions"),
            )
            stop_runtime(runtime, timeout=30)
        if peak is None or rss_end is None:
            raise BenchError("could not read the runtime's memory from /proc")
        figures = {
            "peak_rss_mb": peak,
            "rss_end_mb": rss_end,
            "delivered": float(stats["events"]),
            "requests": float(stats["requests"]),
            "buffered_records": held.get("sluice_buffered_records", -1.0),
            "buffered_mb": held.get("sluice_buffered_bytes", 0.0) / 2**20,
            "paused_partitions": held.get("sluice_paused_partitions", -1.0),
        }
        row.runs.append(figures)
        timelines.append([(t, round(m, 1) if m else None) for t, m in timeline[::5]])
        ctx.log(
            f"  run {index + 1}/{ctx.repeat}: peak RSS {peak:.0f} MB (now {rss_end:.0f} MB), "
            f"{stats['events']:,} records delivered in {stats['requests']:,} requests, "
            f"{figures['buffered_records']:,.0f} buffered "
            f"({figures['paused_partitions']:.0f} partitions paused); "
            f"RSS every 5 s: {', '.join(f'{m:.0f}' for _, m in timeline[::5] if m)} MB"
        )
    row.details["rss_timeline_mb"] = timelines
    return row
