"""The peers rows: Sluice side by side with what a user could run instead, in interleaved
rounds on one topic, so every ratio compares figures taken minutes apart on the same
machine in the same state.

Each round runs every contender once, in an order rotated from round to round: Kafka's
consumer perf tool (the ceiling), a Python process that reads and drops the records (the
floor of any Python consumer), the hand-tuned Python consumer, the Apache Camel route
(when its jars can be had) and the runtime once per batch sink format. Each reads the
whole topic from the start with a fresh consumer group; the three that deliver post to a
fresh counting function (bench.function), which times the first and last request.
Ratios are taken within a round, then their median is reported.
"""

from __future__ import annotations

import json
import time
import typing
from dataclasses import dataclass
from typing import Any

from bench.kafka import wide_value
from bench.peers.perf_tool import classpath, perf_tool_pass
from bench.procs import BenchError, Child
from bench.report import Row, Target, fmt
from bench.runtime import Context, function_server, throughput_pass, wait_for_events
from sluice_runtime.config import Sink

PERF_TOOL = "kafka-perf-tool"
PYTHON_FLOOR = "python-floor"  # reads and drops: what any Python consumer pays a record
PYTHON_PEER = "python-peer"
CAMEL_PEER = "camel"
PEERS = (PYTHON_PEER, CAMEL_PEER)
INTERVAL = 0.1  # seconds a partial batch waits, for every contender that batches


def batch_formats() -> list[str]:
    """Every sink format that carries a batch (cloudevents-binary carries one event)."""
    formats = typing.get_args(Sink.model_fields["format"].annotation)
    return [name for name in formats if name != "cloudevents-binary"]


@dataclass(frozen=True)
class Contender:
    name: str
    sink_format: str = ""  # Sluice's contenders only

    @property
    def is_sluice(self) -> bool:
        return bool(self.sink_format)


def contenders(batch: int, camel: bool) -> list[Contender]:
    found = [Contender(PERF_TOOL), Contender(PYTHON_PEER)]
    if batch > 1:  # one request a record: reading is not what the row is about
        found.insert(1, Contender(PYTHON_FLOOR))
    if camel:
        found.append(Contender(CAMEL_PEER))
    formats = batch_formats() if batch > 1 else ["cloudevents-binary", "json-values"]
    found += [Contender(f"sluice {name}", name) for name in formats]
    return found


def _delivery_figures(stats: dict[str, Any], cpu: float, peak: float | None) -> dict[str, float]:
    span = stats["last_at"] - stats["first_at"]
    if span <= 0:
        raise BenchError("every record arrived in one request; use more records")
    figures = {
        "records_per_s": stats["events"] / span,
        "cpu_us_per_record": cpu / stats["events"] * 1e6,
        "cpu_cores": cpu / span,
        "events_per_request": stats["events"] / stats["requests"],
    }
    if peak is not None:
        figures["peak_rss_mb"] = peak
    return figures


def python_peer_pass(
    ctx: Context, tag: str, topic: str, records: int, batch: int, partitions: int
) -> dict[str, float]:
    with function_server(ctx, tag) as (function, url):
        args = ["--bootstrap", ctx.kafka.bootstrap, "--topic", topic]
        args += ["--group", ctx.kafka.group(tag), "--url", url]
        args += ["--batch", str(batch), "--interval", str(INTERVAL)]
        with Child(
            "python-peer", "bench.peers.python_consumer", args, ctx.work / f"{tag}.log"
        ) as peer:
            peer.expect(f"assigned {partitions}", 60)
            cpu_assigned = peer.cpu_seconds() or 0.0
            stats = wait_for_events(function, peer, records)
            peak = peer.peak_rss_mb()
            cpu = (peer.cpu_seconds() or 0.0) - cpu_assigned
    return _delivery_figures(stats, cpu, peak)


def python_floor_pass(
    ctx: Context, tag: str, topic: str, records: int, partitions: int
) -> dict[str, float]:
    args = ["--bootstrap", ctx.kafka.bootstrap, "--topic", topic]
    args += ["--group", ctx.kafka.group(tag), "--records", str(records)]
    with Child("python-floor", "bench.peers.python_floor", args, ctx.work / f"{tag}.log") as floor:
        floor.expect(f"assigned {partitions}", 60)
        stats = json.loads(floor.expect("{", 180))
    return {
        "records_per_s": stats["records"] / stats["seconds"],
        "cpu_us_per_record": stats["cpu_seconds"] / stats["records"] * 1e6,
        "cpu_cores": stats["cpu_seconds"] / stats["seconds"],
        "peak_rss_mb": stats["peak_rss_mb"],
    }


def run_contender(
    ctx: Context,
    contender: Contender,
    tag: str,
    topic: str,
    records: int,
    batch: int,
    partitions: int,
    tools: str,
) -> dict[str, float]:
    if contender.name == PERF_TOOL:
        return perf_tool_pass(
            ctx.kafka.bootstrap,
            topic,
            records,
            ctx.kafka.group(tag),
            tools,
            ctx.work / f"{tag}.log",
        )
    if contender.name == PYTHON_FLOOR:
        return python_floor_pass(ctx, tag, topic, records, partitions)
    if contender.name == PYTHON_PEER:
        return python_peer_pass(ctx, tag, topic, records, batch, partitions)
    if contender.name == CAMEL_PEER:
        from bench.peers.camel import camel_pass

        return camel_pass(ctx, tag, topic, records, batch, INTERVAL)
    window = {"maxMessages": batch, "maxInterval": f"{int(INTERVAL * 1000)}ms"}
    figures, _summary = throughput_pass(
        ctx,
        tag,
        topic,
        records,
        window,
        sink_format=contender.sink_format,
        partitions=partitions,
    )
    figures["cpu_us_per_record"] = figures.pop("runtime_cpu_us_per_record")
    figures["cpu_cores"] = figures.pop("runtime_cpu_cores")
    return figures


def peers_row(
    ctx: Context, name: str, records: int, batch: int, partitions: int, camel: bool
) -> Row:
    row = Row(
        name,
        f"{records:,} ~200-byte keyed JSON records in {partitions} partitions, batches of "
        f"{batch} (maxInterval {INTERVAL * 1000:.0f}ms), ordered per partition, "
        "at-least-once; every contender side by side in interleaved rounds; headline: the "
        "slowest Sluice format's records/s over the best peer's, taken within each round",
        "slowest_sluice_x_best_peer",
        "x",
        Target(">=", 1.5),
        also={
            "worst_sluice_cpu_x_perf_tool": ("CPU/record vs perf tool", "x"),
        },
    )
    topic = ctx.kafka.create_topic(partitions, prefix=f"bench-{name}")
    ctx.log(f"  producing {records:,} keyed records to {topic} ({partitions} partitions)")
    produced = ctx.kafka.produce_bulk(topic, records, wide_value)
    ctx.log(f"  produced in {produced.seconds:.1f}s (mean value {produced.value_bytes:.0f} bytes)")
    tools = classpath()
    lineup = contenders(batch, camel)
    if camel:
        from bench.peers.camel import camel_available

        reason = camel_available()
        if reason:
            ctx.log(f"  Camel peer left out: {reason}")
            lineup = [c for c in lineup if c.name != CAMEL_PEER]
    row.details.update(
        records=records,
        batch=batch,
        partitions=partitions,
        interval_s=INTERVAL,
        contenders=[c.name for c in lineup],
        mean_value_bytes=round(produced.value_bytes, 1),
    )
    for index in range(ctx.repeat):
        run: dict[str, float] = {}
        shift = index % len(lineup)
        for contender in lineup[shift:] + lineup[:shift]:
            tag = f"{name}-{index + 1}-{contender.name.replace(' ', '-')}"
            began = time.monotonic()
            figures = run_contender(ctx, contender, tag, topic, records, batch, partitions, tools)
            for key, value in figures.items():
                run[f"{contender.name}.{key}"] = value
            ctx.log(
                f"  round {index + 1}/{ctx.repeat} {contender.name}: "
                f"{figures['records_per_s']:,.0f} records/s, "
                f"{figures['cpu_us_per_record']:.1f} µs CPU/record, "
                f"peak RSS {figures.get('peak_rss_mb', 0):.0f} MB "
                f"({time.monotonic() - began:.0f}s)"
            )
        _ratios(run, lineup)
        row.runs.append(run)
    return row


def _ratios(run: dict[str, float], lineup: list[Contender]) -> None:
    """Each Sluice contender against the best peer and against the perf tool, this round."""
    peers = [run[f"{c.name}.records_per_s"] for c in lineup if c.name in PEERS]
    best_peer = max(peers) if peers else None
    ceiling = run.get(f"{PERF_TOOL}.cpu_us_per_record")
    ceiling_rate = run.get(f"{PERF_TOOL}.records_per_s")
    for contender in lineup:
        rate = run[f"{contender.name}.records_per_s"]
        cpu = run[f"{contender.name}.cpu_us_per_record"]
        if best_peer:
            run[f"{contender.name}.x_best_peer"] = rate / best_peer
        if ceiling:
            run[f"{contender.name}.cpu_x_perf_tool"] = cpu / ceiling
        if ceiling_rate:
            run[f"{contender.name}.x_perf_tool"] = rate / ceiling_rate
    sluice = [c.name for c in lineup if c.is_sluice]
    if best_peer:
        run["slowest_sluice_x_best_peer"] = min(run[f"{n}.x_best_peer"] for n in sluice)
    if ceiling:
        run["worst_sluice_cpu_x_perf_tool"] = max(run[f"{n}.cpu_x_perf_tool"] for n in sluice)


def peers_section(rows: list[Row]) -> str:
    """One table per peers row: each contender's medians and its ratios."""
    parts = []
    for row in rows:
        if not row.name.startswith("peers-") or not row.runs:
            continue
        medians = row.medians
        lines = [
            f"{row.name} ({row.details.get('records', 0):,} records, "
            f"{row.details.get('partitions')} partitions, batch {row.details.get('batch')}; "
            f"medians of {len(row.runs)} interleaved rounds; ratios taken within each round):",
            "",
            "| contender | records/s | CPU µs/record | CPU cores | peak RSS MB "
            "| x best peer | x perf tool records/s | CPU/record x perf tool |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name in row.details.get("contenders", []):

            def cell(key: str, name: str = name, medians: dict[str, float] = medians) -> str:
                return fmt(medians.get(f"{name}.{key}"))

            lines.append(
                f"| {name} | {cell('records_per_s')} | {cell('cpu_us_per_record')} "
                f"| {cell('cpu_cores')} | {cell('peak_rss_mb')} | {cell('x_best_peer')} "
                f"| {cell('x_perf_tool')} | {cell('cpu_x_perf_tool')} |"
            )
        parts.append("\n".join(lines))
    return "\n\n".join(parts)
