"""The ``sluice operator`` and ``sluice crd`` subcommands. Their dependencies (kopf, the
Kubernetes client) are imported when they run, so other subcommands start fast."""

from __future__ import annotations

import argparse
import logging
import os
import sys


def _crd(_args: argparse.Namespace) -> int:
    from sluice_operator.crd import render_crd

    sys.stdout.write(render_crd())
    return 0


def _operator(args: argparse.Namespace) -> int:
    from sluice_operator.runner import run_operator
    from sluice_operator.settings import OperatorConfig
    from sluice_runtime.logs import setup_logging

    setup_logging(args.log_level, json=not args.plain_logs)
    if args.log_level != "debug":
        # Kopf reports every handler it runs at info; our reconcile logs what changed.
        logging.getLogger("kopf").setLevel(logging.WARNING)
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    try:
        config = OperatorConfig.from_env()
    except ValueError as error:
        print(f"sluice operator: {error}", file=sys.stderr)
        return 2
    run_operator(
        config,
        kubeconfig=args.kubeconfig,
        namespaces=args.namespace or (),
        clusterwide=args.all_namespaces,
        port=args.port or None,
    )
    return 0


def add_operator_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    operator = sub.add_parser(
        "operator",
        help="run the operator",
        description="Reconcile Connectors into runtime Deployments. Configuration from the"
        " environment: SLUICE_RUNTIME_IMAGE, SLUICE_OPERATOR_TIMER_INTERVAL,"
        " SLUICE_OPERATOR_BACKOFF_MAX, SLUICE_OPERATOR_KAFKA_TIMEOUT, SLUICE_OPERATOR_WORKERS,"
        " SLUICE_CLUSTER_DOMAIN, SLUICE_LOG_LEVEL (see docs/operator.md).",
    )
    scope = operator.add_mutually_exclusive_group(required=True)
    scope.add_argument(
        "-n",
        "--namespace",
        action="append",
        metavar="NS",
        help="watch this namespace (repeatable)",
    )
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace")
    operator.add_argument(
        "--kubeconfig", help="kubeconfig file (default: in-cluster, else $KUBECONFIG)"
    )
    operator.add_argument(
        "--port",
        type=int,
        default=8080,
        help="port of /metrics (Prometheus) and /healthz (liveness); default 8080, 0 = none",
    )
    operator.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        default=os.environ.get("SLUICE_LOG_LEVEL", "info"),
        help="default $SLUICE_LOG_LEVEL, else info",
    )
    operator.add_argument("--plain-logs", action="store_true", help="human-readable logs")
    operator.set_defaults(handler=_operator)

    crd = sub.add_parser("crd", help="print the Connector CRD")
    crd.set_defaults(handler=_crd)
