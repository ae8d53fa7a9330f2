"""The ``sluice`` command: operator, runtime and offline tools in one entry point.

Subcommands import what they need lazily, so ``sluice run`` starts without loading the
operator's dependencies.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sluice_cli.operator_commands import add_operator_commands
from sluice_runtime.contract import METRICS_PORT


def _run(args: argparse.Namespace) -> int:
    from sluice_runtime.app import DataPlane, run_runtime, tune_garbage_collector
    from sluice_runtime.config import load_connector_file
    from sluice_runtime.errors import ManifestError, SpecError
    from sluice_runtime.logs import mark_process, setup_logging
    from sluice_runtime.processes import follow_supervisor, for_one_process

    try:
        connector = load_connector_file(args.file)
    except ManifestError as error:
        print(error, file=sys.stderr)
        return 2
    setup_logging(connector.spec.runtime.log_level, json=not args.plain_logs)
    if connector.spec.runtime.trace_records or args.trace:
        connector = connector.model_copy(
            update={
                "spec": connector.spec.model_copy(
                    update={
                        "runtime": connector.spec.runtime.model_copy(update={"trace_records": True})
                    }
                )
            }
        )
    if connector.spec.sink.uri is None and args.sink_uri is None:
        print(
            f"{args.file}: spec.sink.ref needs the operator to resolve it; in standalone mode "
            "set spec.sink.uri or pass --sink-uri",
            file=sys.stderr,
        )
        return 2
    processes = connector.spec.scaling.processes_per_replica
    if processes > 1 and args.process_index is None:
        return _run_processes(args, processes)
    port_file = None
    if args.process_index is not None:
        follow_supervisor()
        mark_process(args.process_index)
        connector = for_one_process(connector)
        port_file = Path(args.port_file) if args.port_file else None
    runtime = DataPlane(
        connector,
        base_dir=Path(args.file).resolve().parent,
        metrics_port=args.metrics_port,
        grace=args.grace,
        sink_uri=args.sink_uri,
        # One of a pod's runtime processes: its probes are the supervisor's to merge.
        probe_host="0.0.0.0" if args.process_index is None else "127.0.0.1",
        port_file=port_file,
    )
    tune_garbage_collector()
    try:
        run_runtime(runtime.run())
    except SpecError as error:
        print(f"{args.file}: {error}", file=sys.stderr)
        return 2
    return 0


def _test_pattern(args: argparse.Namespace) -> int:
    from sluice_runtime.patterns import run_test_pattern

    return run_test_pattern(args.pattern, args.event)


def _test_transform(args: argparse.Namespace) -> int:
    from sluice_runtime.transform import run_test_transform
    from sluice_runtime.transform.cli import RecordBytes, read_bytes_arg

    record = None
    if args.value is not None or args.key is not None:
        try:
            record = RecordBytes(
                value=read_bytes_arg(args.value, "--value") if args.value else None,
                value_schema=Path(args.value_schema) if args.value_schema else None,
                key=read_bytes_arg(args.key, "--key") if args.key else None,
                key_schema=Path(args.key_schema) if args.key_schema else None,
            )
        except ValueError as error:
            print(f"test-transform: {error}", file=sys.stderr)
            return 2
    return run_test_transform(args.file, args.event, record)


def _validate(args: argparse.Namespace) -> int:
    from sluice_cli.validate import run_validate

    return run_validate(args.files)


def _redrive(args: argparse.Namespace) -> int:
    from sluice_runtime.redrive import run_redrive

    return run_redrive(args.file, args.since, args.limit)


def _run_processes(args: argparse.Namespace, processes: int) -> int:
    """scaling.processesPerReplica > 1: this process supervises that many runtime
    processes, each ``sluice run`` on the same manifest (sluice_runtime/processes.py)."""
    from sluice_runtime.processes import run_supervised

    command = [sys.executable, "-m", "sluice_cli", "run", "-f", args.file]
    command += ["--metrics-port", "0", "--grace", str(args.grace)]
    if args.sink_uri is not None:
        command += ["--sink-uri", args.sink_uri]
    if args.trace:
        command.append("--trace")
    if args.plain_logs:
        command.append("--plain-logs")
    return run_supervised(command, processes, args.metrics_port, args.grace)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sluice", description="Connect Kafka topics to serverless functions."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the data plane for one Connector manifest")
    run.add_argument("-f", "--file", required=True, help="Connector manifest (YAML or JSON)")
    run.add_argument(
        "--metrics-port",
        type=int,
        default=METRICS_PORT,
        help=f"port for /metrics, /healthz, /readyz and /status (default {METRICS_PORT})",
    )
    run.add_argument(
        "--grace",
        type=float,
        default=25.0,
        help="seconds to deliver buffered records on shutdown (default 25)",
    )
    run.add_argument("--sink-uri", help="override spec.sink (the operator passes the resolved ref)")
    run.add_argument("--trace", action="store_true", help="log each record's fate")
    run.add_argument("--plain-logs", action="store_true", help="human-readable logs, not JSON")
    # Set by the supervisor on each of a pod's runtime processes (processesPerReplica > 1).
    run.add_argument("--process-index", type=int, help=argparse.SUPPRESS)
    run.add_argument("--port-file", help=argparse.SUPPRESS)
    run.set_defaults(handler=_run)

    pattern = sub.add_parser("test-pattern", help="does an event match an event pattern?")
    pattern.add_argument("--pattern", required=True, help="pattern JSON, or @file")
    pattern.add_argument("--event", required=True, help="event JSON, or @file")
    pattern.set_defaults(handler=_test_pattern)

    transform = sub.add_parser(
        "test-transform", help="what the function would receive for one record"
    )
    transform.add_argument("-f", "--file", required=True, help="Connector manifest")
    transform.add_argument("--event", help="record envelope JSON, or @file")
    transform.add_argument(
        "--value",
        help="the record's value bytes as Kafka holds them (@file, or base64), decoded as "
        "source.kafka.valueFormat says",
    )
    transform.add_argument(
        "--value-schema", metavar="FILE", help="the schema to decode --value with (avro, ...)"
    )
    transform.add_argument("--key", help="the record's key bytes (@file, or base64)")
    transform.add_argument("--key-schema", metavar="FILE", help="the schema for --key")
    transform.set_defaults(handler=_test_transform)

    add_operator_commands(sub)

    validate = sub.add_parser(
        "validate", help="check Connector manifests offline (schema, rules, patterns, UDFs)"
    )
    validate.add_argument("files", nargs="+", metavar="FILE", help="YAML files to check")
    validate.set_defaults(handler=_validate)

    dlq = sub.add_parser("dlq", help="work with a Connector's dead-letter topic")
    dlq_sub = dlq.add_subparsers(dest="dlq_command", required=True, metavar="COMMAND")
    redrive = dlq_sub.add_parser(
        "redrive", help="send dead-lettered records through the pipeline again"
    )
    redrive.add_argument("-f", "--file", required=True, help="Connector manifest")
    redrive.add_argument("--since", help="only records dead-lettered at or after this ISO time")
    redrive.add_argument("--limit", type=int, help="at most this many records")
    redrive.set_defaults(handler=_redrive)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    sys.exit(args.handler(args))


if __name__ == "__main__":
    main()
