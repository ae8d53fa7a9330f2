"""Rows that compare one runtime process with two in one pod (scaling.processesPerReplica),
side by side: each run reads the same topic once with one process and once with two, each
pass with a fresh consumer group, so both see the same records and the same machine load.

Rates count from the moment every consumer of the pod has its partitions (the broker says
so) to the last delivery. The processes join the group one after the other, and with the
local broker's ``group.initial.rebalance.delay.ms=0`` the second gets its share only after
a cooperative rebalance (two heartbeats, ~6 s), while the first reads alone: a start-up cost
paid once per pod (with the broker default of 3 s, processes started together join in one
generation), not the pace. Hence more records than throughput-batch100 (a million), so that
most are read after the group settled; with one process that moment is the start.

The headline is the two-process rate; the one-process rate and the ratio stand beside it.
CPU and peak RSS are the whole process tree's (the supervising ``sluice run``, its runtime
processes and their UDF workers): what the pod would use.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from bench.kafka import wide_value
from bench.procs import BenchError
from bench.report import Row, Target
from bench.runtime import (
    PARTITIONS,
    Context,
    _progress,
    function_server,
    start_runtime,
    stop_runtime,
    wait_for_events,
)

PROCESSES = 2

ALSO = {
    "one_process_records_per_s": ("1 process", "records/s"),
    "speedup": ("", "x 1 process"),
    "runtime_cpu_cores": ("pod CPU", "cores"),
    "runtime_cpu_us_per_record": ("", "µs CPU/record"),
    "one_process_cpu_us_per_record": ("1 process", "µs CPU/record"),
    "peak_rss_mb": ("peak RSS", "MB"),
}


def settled_pass(
    ctx: Context,
    tag: str,
    topic: str,
    records: int,
    window: dict[str, Any],
    extra: dict[str, Any] | None,
    source_extra: dict[str, Any] | None = None,
) -> dict[str, float]:
    with (
        function_server(ctx, tag) as (function, url),
        start_runtime(
            ctx, tag, topic, url, window, extra=extra, source_extra=source_extra
        ) as runtime,
    ):
        runtime.expect(f"assigned {PARTITIONS}", 60)
        settled_at = time.time()
        cpu_settled = runtime.cpu_seconds() or 0.0
        before = function.ask("stats")["events"]
        stats = wait_for_events(function, runtime, records)
        peak = runtime.peak_rss_mb()
        cpu_used = (runtime.cpu_seconds() or 0.0) - cpu_settled
        stop_runtime(runtime)
    span = stats["last_at"] - max(settled_at, stats["first_at"] or settled_at)
    counted = stats["events"] - before
    if span <= 0 or counted < records / 4:
        raise BenchError(
            f"only {counted:,} of {records:,} events came after the group settled; use more"
        )
    figures = {
        "records_per_s": counted / span,
        "counted_records": float(counted),
        "events_per_request": stats["events"] / stats["requests"],
        "runtime_cpu_cores": cpu_used / span,
        "runtime_cpu_us_per_record": cpu_used / counted * 1e6,
        "requests_per_s": stats["requests"] / (stats["last_at"] - stats["first_at"]),
        "function_cpu_cores": 0.0,  # not measured here
        "duplicates": float(stats["events"] - records),
    }
    if peak is not None:
        figures["peak_rss_mb"] = peak
    return figures


def processes_row(
    ctx: Context,
    name: str,
    description: str,
    records: int,
    window: dict[str, Any],
    target: Target | None,
    extra: dict[str, Any] | None = None,
    source_extra: dict[str, Any] | None = None,
    value: Callable[[int, int], bytes] = wide_value,
) -> Row:
    """``value(i, now_ms)`` makes the i-th record's value (the JSON of throughput-batch100
    unless told); ``source_extra`` goes into source.kafka (a value format, a registry)."""
    row = Row(name, description, "records_per_s", "records/s", target, also=ALSO)
    row.details.update(
        window=window,
        spec=extra or {},
        source=source_extra or {},
        records=records,
        partitions=PARTITIONS,
        processes=PROCESSES,
    )
    topic = ctx.kafka.create_topic(PARTITIONS, prefix=f"bench-{name}")
    ctx.log(f"  producing {records:,} keyed records to {topic} ({PARTITIONS} partitions)")
    produced = ctx.kafka.produce_bulk(topic, records, value)
    ctx.log(f"  produced in {produced.seconds:.1f}s ({produced.rate:,.0f}/s)")
    for index in range(ctx.repeat):
        one = settled_pass(
            ctx, f"{name}-{index + 1}-p1", topic, records, window, extra, source_extra
        )
        _progress(ctx, f"run {index + 1}/{ctx.repeat}, 1 process", one)
        spec = {**(extra or {}), "scaling": {"processesPerReplica": PROCESSES}}
        two = settled_pass(
            ctx, f"{name}-{index + 1}-p2", topic, records, window, spec, source_extra
        )
        _progress(ctx, f"run {index + 1}/{ctx.repeat}, {PROCESSES} processes", two)
        two["one_process_records_per_s"] = one["records_per_s"]
        two["one_process_cpu_us_per_record"] = one["runtime_cpu_us_per_record"]
        two["speedup"] = two["records_per_s"] / one["records_per_s"]
        row.runs.append(two)
    return row
