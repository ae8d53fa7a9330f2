"""``python -m bench``: run Sluice's benchmarks and write bench-results/latest.{json,md}.

python -m bench [--quick] [--only NAME[,NAME]] [--repeat N] [--out DIR] [--profile]
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.procs import BenchError, Child
from bench.report import Row, Target, console_table, load_average, write_reports

ROWS = (
    "throughput-batch100",
    "throughput-one-per-request",
    "throughput-udf",
    "latency-realtime",
    "memory-slow-sink",
    "memory-large-records",
    "queue-vs-group",
    "patterns",
    "transforms",
    "bodies",
    "http-client",
    "throughput-avro",
    "peers-batch100",
    "peers-batch1",
    "throughput-batch100-procs2",
    "throughput-udf-procs2",
    "throughput-avro-procs2",
)
KAFKA_ROWS = frozenset(ROWS[:8]) | {
    "throughput-avro",
    "peers-batch100",
    "peers-batch1",
    "throughput-batch100-procs2",
    "throughput-udf-procs2",
    "throughput-avro-procs2",
}
TARGETS = {  # for rows that fail before they say so themselves
    "throughput-batch100": (Target(">=", 150_000), "records/s"),
    "throughput-udf": (Target(">=", 80_000), "records/s"),
    "throughput-batch100-procs2": (Target(">=", 150_000), "records/s"),
    "throughput-udf-procs2": (Target(">=", 80_000), "records/s"),
    "throughput-avro": (Target(">=", 100_000), "records/s"),
    "throughput-avro-procs2": (Target(">=", 100_000), "records/s"),
    "latency-realtime": (Target("<", 20.0), "ms"),
    "memory-slow-sink": (Target("<", 256.0), "MB"),
    "memory-large-records": (Target("<", 256.0), "MB"),
    "queue-vs-group": (Target(">=", 6.0), "x group mode"),
    "patterns": (Target(">=", 1_000_000), "evals/s"),
    "transforms": (Target(">=", 300_000), "transforms/s"),
    "peers-batch100": (Target(">=", 1.5), "x"),
    "peers-batch1": (Target(">=", 1.5), "x"),
}


TRIVIAL_UDF = "def handle_message(event, context):\n    return event['value']\n"


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="Run Sluice's benchmarks against a real broker."
    )
    parser.add_argument("--quick", action="store_true", help="a small smoke run (repeat 1)")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help=f"run only these rows (repeatable or comma-separated): {', '.join(ROWS)}",
    )
    parser.add_argument("--repeat", type=int, help="runs per row; medians are reported (3)")
    parser.add_argument("--out", type=Path, default=Path("bench-results"), help="output folder")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also profile the runtime (cProfile) in one extra throughput-batch100 pass",
    )
    parser.add_argument("--records", type=int, help="records for throughput-batch100")
    parser.add_argument(
        "--peer-records",
        type=int,
        help="records for peers-batch100 (default 1,000,000; peers-batch1 takes a twentieth)",
    )
    parser.add_argument(
        "--peer-partitions", type=int, default=4, help="partitions of the peers rows' topic (4)"
    )
    parser.add_argument(
        "--no-camel", action="store_true", help="leave the Apache Camel peer out of the peers rows"
    )
    args = parser.parse_args(argv)
    selected = [name.strip() for value in args.only for name in value.split(",") if name.strip()]
    unknown = [name for name in selected if name not in ROWS]
    if unknown:
        parser.error(f"unknown row(s) {', '.join(unknown)}; choose from {', '.join(ROWS)}")
    args.rows = [name for name in ROWS if not selected or name in selected]
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.time()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out / "work", ignore_errors=True)  # manifests and logs of the last run
    load = load_average()
    if load and load[0] > 0.8:
        _log(
            f"note: load average is {load[0]:.2f} before starting; other work on this "
            f"{os.cpu_count()}-CPU machine will skew the figures"
        )
    _log(
        f"benchmarks: {', '.join(args.rows)} (repeat {args.repeat}"
        f"{', quick' if args.quick else ''}); results in {out}/"
    )
    rows: list[Row] = []

    def attempt(name: str, run: Callable[[], Row]) -> None:
        _log(f"{name}")
        began = time.monotonic()
        try:
            row = run()
        except (BenchError, Exception) as error:
            detail = str(error) if isinstance(error, BenchError) else traceback.format_exc()
            _log(f"  {name} FAILED: {detail}")
            known = TARGETS.get(name)
            row = Row(name, "", "", known[1] if known else "", known[0] if known else None)
            row.error = str(error) or type(error).__name__
        row.details["row_seconds"] = round(time.monotonic() - began, 1)
        rows.append(row)
        if row.error is None:
            target = f" (target {row.target.text(row.unit)})" if row.target else ""
            _log(f"  {name}: {row.verdict} {row.value or 0:,.2f} {row.unit}{target}")

    kafka_rows = [name for name in args.rows if name in KAFKA_ROWS]
    if kafka_rows:
        _run_kafka_rows(args, out, kafka_rows, attempt)
    if "patterns" in args.rows:
        from bench.micro import patterns_row

        attempt("patterns", lambda: patterns_row(args.repeat, args.quick, _log))
    if "transforms" in args.rows:
        from bench.micro import transforms_row

        attempt("transforms", lambda: transforms_row(args.repeat, args.quick, _log))
    if "bodies" in args.rows:
        from bench.micro import bodies_row

        attempt("bodies", lambda: bodies_row(args.repeat, args.quick, _log))
    if "http-client" in args.rows:
        from bench.http_clients import http_client_row

        def function_child(tag: str) -> Child:
            return Child("function", "bench.function", [], out / "work" / f"{tag}.fn.log")

        attempt(
            "http-client", lambda: http_client_row(args.repeat, args.quick, function_child, _log)
        )

    from bench.http_clients import http_client_section
    from bench.peers.row import peers_section

    json_path, md_path = write_reports(
        out,
        rows,
        {
            "argv": sys.argv[1:] if argv is None else argv,
            "quick": args.quick,
            "repeat": args.repeat,
            "rows": args.rows,
            "loadavg_start": load,
        },
        started,
        [http_client_section, peers_section],
    )
    print()
    print(console_table(rows))
    for section in (http_client_section(rows), peers_section(rows)):
        if section:
            print()
            print(section)
    print()
    _log(f"wrote {json_path} and {md_path} in {time.time() - started:.0f}s")
    return 1 if any(row.error for row in rows) else 0


if TYPE_CHECKING:
    from bench.runtime import Context


def _run_kafka_rows(
    args: argparse.Namespace,
    out: Path,
    names: list[str],
    attempt: Callable[[str, Callable[[], Row]], None],
) -> None:
    from bench.kafka import Kafka, broker
    from bench.runtime import Context, latency_row, memory_row, throughput_row

    try:
        with broker(_log) as bootstrap:
            kafka = Kafka(bootstrap)
            ctx = Context(kafka, out, _log, args.quick, args.repeat, args.profile)
            try:
                if "throughput-batch100" in names:
                    records = args.records or (30_000 if args.quick else 300_000)
                    attempt(
                        "throughput-batch100",
                        lambda: throughput_row(
                            ctx,
                            "throughput-batch100",
                            f"{records:,} ~200-byte keyed records waiting in 8 partitions, "
                            "window maxMessages 100 / maxInterval 100ms, cloudevents-batch; "
                            "records/s from first to last delivery",
                            records,
                            {"maxMessages": 100, "maxInterval": "100ms"},
                            Target(">=", 150_000),
                            profile=args.profile,
                        ),
                    )
                if "throughput-one-per-request" in names:
                    records = 3_000 if args.quick else 20_000
                    attempt(
                        "throughput-one-per-request",
                        lambda: throughput_row(
                            ctx,
                            "throughput-one-per-request",
                            f"{records:,} records as above with window maxMessages 1 "
                            "(one record per request)",
                            records,
                            {"maxMessages": 1, "maxInterval": "100ms"},
                            None,
                        ),
                    )
                if "throughput-udf" in names:
                    records = 30_000 if args.quick else 300_000
                    attempt(
                        "throughput-udf",
                        lambda: throughput_row(
                            ctx,
                            "throughput-udf",
                            f"{records:,} records as throughput-batch100, through a trivial "
                            "Python UDF (returns the record's value) in its worker process",
                            records,
                            {"maxMessages": 100, "maxInterval": "100ms"},
                            Target(">=", 80_000),
                            extra={"transform": {"udf": {"source": TRIVIAL_UDF}}},
                        ),
                    )
                for base, extra in (
                    ("throughput-batch100", None),
                    ("throughput-udf", {"transform": {"udf": {"source": TRIVIAL_UDF}}}),
                ):
                    name = f"{base}-procs2"
                    if name in names:
                        attempt(name, functools.partial(_processes, ctx, args, base, extra))
                if "throughput-avro" in names:
                    from bench.schemas import avro_row, schema_registry

                    def avro() -> Row:
                        with schema_registry(_log) as registry_url:
                            return avro_row(ctx, registry_url, 30_000 if args.quick else 200_000)

                    attempt("throughput-avro", avro)
                if "throughput-avro-procs2" in names:
                    attempt("throughput-avro-procs2", functools.partial(_avro_processes, ctx, args))
                if "latency-realtime" in names:
                    attempt("latency-realtime", lambda: latency_row(ctx))
                if "memory-slow-sink" in names:
                    attempt("memory-slow-sink", lambda: memory_row(ctx))
                for batch in (100, 1):
                    name = f"peers-batch{batch}"
                    if name in names:
                        attempt(name, functools.partial(_peers, ctx, args, name, batch))
                if "memory-large-records" in names:
                    attempt(
                        "memory-large-records",
                        lambda: memory_row(ctx, name="memory-large-records", large=True),
                    )
                if "queue-vs-group" in names:
                    from bench.queue import queue_row

                    attempt("queue-vs-group", lambda: queue_row(ctx))
            finally:
                kafka.cleanup()
                kafka.close()
    except BenchError as error:  # no broker: the Kafka rows report the reason
        _log(f"Kafka rows not run: {error}")
        for name in names:
            attempt(name, functools.partial(_raise, error))


def _peers(ctx: Context, args: argparse.Namespace, name: str, batch: int) -> Row:
    from bench.peers.row import peers_row

    records = args.peer_records or (30_000 if args.quick else 1_000_000)
    if batch == 1:
        records = max(1_000, records // 20)
    return peers_row(ctx, name, records, batch, args.peer_partitions, not args.no_camel)


def _processes(
    ctx: Context, args: argparse.Namespace, base: str, extra: dict[str, Any] | None
) -> Row:
    from bench.pod_processes import processes_row

    records = 400_000 if args.quick else 1_000_000
    return processes_row(
        ctx,
        f"{base}-procs2",
        f"{base}'s records and window ({records:,} records, 8 partitions) through one runtime"
        " process and through two in the pod (scaling.processesPerReplica: 2), side by side"
        " in each run; records/s once the group settled; the headline is two processes",
        records,
        {"maxMessages": 100, "maxInterval": "100ms"},
        TARGETS[f"{base}-procs2"][0],
        extra,
    )


def _avro_processes(ctx: Context, args: argparse.Namespace) -> Row:
    from bench.pod_processes import processes_row
    from bench.schemas import (
        FILTER,
        avro_source,
        avro_values,
        register_view_schema,
        schema_registry,
    )

    records = 400_000 if args.quick else 1_000_000
    with schema_registry(_log) as registry_url:
        return processes_row(
            ctx,
            "throughput-avro-procs2",
            f"throughput-avro's records and filter ({records:,} Avro records, 8 partitions)"
            " through one runtime process and through two in the pod"
            " (scaling.processesPerReplica: 2), side by side in each run; records/s once the"
            " group settled; the headline is two processes",
            records,
            {"maxMessages": 100, "maxInterval": "100ms"},
            TARGETS["throughput-avro-procs2"][0],
            {"filter": FILTER},
            avro_source(registry_url),
            avro_values(register_view_schema(registry_url)),
        )


def _raise(error: BenchError) -> Row:
    raise error


if __name__ == "__main__":
    sys.exit(main())
