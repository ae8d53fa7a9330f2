"""Runs the operator: kopf with our handlers and context, and one HTTP port for /metrics
and /healthz. ``sluice operator`` calls :func:`run_operator`; tests run it in a thread with
a stop flag."""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import threading
import warnings
from collections.abc import Sequence
from concurrent.futures import TimeoutError as FutureTimeout

import kopf

from sluice_operator.context import OperatorContext
from sluice_operator.handlers import build_registry
from sluice_operator.metrics import operator_probes
from sluice_operator.settings import OperatorConfig

log = logging.getLogger("sluice.operator")

LIVENESS_TIMEOUT = 5.0

RECURSION_LIMIT = 50_000
"""The API server accepts JSON nested up to 10,000 levels (Go's encoding/json limit), and
kopf decodes every object it lists or watches with Python's json module, whose decoder
counts each level against the recursion limit (1,000 by default): one Connector whose
pattern nested ~1,000 levels ("maximum recursion depth exceeded while decoding a JSON
object") failed kopf's list of Connectors, which stopped the operator for every
Connector. Kopf then deep-copies each object (two frames a level) and diffs it; 50,000
covers all of it for the deepest object the API server holds (tested with 9,990 levels),
and the spec check refuses such a pattern without recursing (its depth is bounded first).
Pure-Python frames live on the heap; the C stack is used by json's decoder and encoder,
about 200 bytes a level: 2 MiB at most, of the 8 MiB threads get by default. But a limit
this high also lets any recursion that passes through C (a repr, a comparison, a generator
chain) run far past what 8 MiB holds, and a thread whose stack overflows takes the whole
process down without a word: see THREAD_STACK."""

THREAD_STACK = 256 * 2**20
"""Bytes of stack for the threads the operator starts (its reconcile workers among them),
so that a recursion that reaches RECURSION_LIMIT ends in RecursionError, not in SIGSEGV.
Address space, not memory: only the pages a thread touches are used."""


def _responsive(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether the event loop that runs kopf's watches and timers still runs tasks."""
    if loop.is_closed() or not loop.is_running():
        return False
    try:
        asyncio.run_coroutine_threadsafe(asyncio.sleep(0), loop).result(LIVENESS_TIMEOUT)
    except (FutureTimeout, RuntimeError):
        return False
    return True


def run_operator(
    config: OperatorConfig,
    *,
    kubeconfig: str | None = None,
    namespaces: Sequence[str] = (),
    clusterwide: bool = False,
    port: int | None = 8080,
    stop_flag: threading.Event | None = None,
    ready_flag: threading.Event | None = None,
    context: OperatorContext | None = None,
) -> None:
    """Blocks until the stop flag is set (or SIGTERM/SIGINT on the main thread).

    ``port`` serves /metrics and /healthz (None: no server). ``context`` lets a caller
    (tests, the benchmark) keep hold of the operator's metrics.
    """
    if bool(namespaces) == clusterwide:
        raise ValueError("watch either some namespaces or all of them (clusterwide)")
    sys.setrecursionlimit(max(sys.getrecursionlimit(), RECURSION_LIMIT))
    threading.stack_size(max(threading.stack_size(), THREAD_STACK))
    context = context or OperatorContext.create(config, kubeconfig)
    # A Runner, like asyncio.run, cancels and awaits what is left at the end (kopf's
    # connections included), and gives the liveness check the loop to probe.
    runner = asyncio.Runner()
    loop = runner.get_loop()
    server = (
        operator_probes(context.metrics, port, lambda: _responsive(loop)).start()
        if port is not None
        else None
    )
    try:
        if server is not None:
            log.info("Opened /metrics and /healthz on port %d", server.port)
        where = "all namespaces" if clusterwide else ", ".join(namespaces)
        log.info("Started Sluice operator for %s", where)
        runner.run(
            kopf.operator(
                registry=build_registry(config.timer_interval),
                memo=context,
                namespaces=list(namespaces),
                clusterwide=clusterwide,
                standalone=True,
                stop_flag=stop_flag,
                ready_flag=ready_flag,
            )
        )
    finally:
        if server is not None:
            server.stop()
        runner.close()
        # Kopf sometimes leaves the connection of a watch it cancelled to the garbage
        # collector; collect it now, quietly, not wherever the interpreter next collects.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()
        context.close()
        log.info("Stopped Sluice operator")
