"""Several runtime processes in one pod (``scaling.processesPerReplica``).

One runtime process is one Python interpreter, bound by its GIL to about one core. With
``processesPerReplica: N`` above 1, ``sluice run`` becomes a small supervisor that starts N
runtime processes (``sluice run`` again, each told its index) and serves the pod's one
``/metrics``, ``/healthz``, ``/readyz`` and ``/status`` on the pod's port from theirs:

    sluice run (supervisor) ── :9090 /metrics /status /healthz /readyz (merged, pod_view.py)
        ├── runtime process 0 ── 127.0.0.1:<its port>   consumers in the Connector's group
        └── runtime process 1 ── 127.0.0.1:<its port>   consumers in the same group

Every runtime process is a full runtime with its own consumers in the Connector's consumer
(or share) group, so the group spreads the partitions over all of them exactly as over
several pods: a partition still has one owner at a time, so per-partition order and
at-least-once hold as they do across replicas. Each process has its own buffer bounds, its
own UDF worker and its share of the rate limit.

A process that exits on its own fails the pod: the supervisor stops the other processes
(each finishes and commits what it delivered, as on SIGTERM) and exits non-zero, so the
kubelet restarts the container and counts it in the pod's restarts, as it does for a single
process that fails. Until then nothing is left unowned: the group hands the dead process's
partitions to the remaining members (here or in other pods), which resume from the last
committed offset (records delivered but not committed are delivered again, at least once).
Restarting the one process in place would hide a crash loop behind a pod that looks
healthy.

SIGTERM (and SIGINT) is passed to every process; each drains within the grace period as a
single runtime does, and the supervisor exits once all have (0 when all exited cleanly).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import math
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from sluice_runtime.config import Connector
from sluice_runtime.contract import PROCESS_INDEX_ENV, STATUS_PATH
from sluice_runtime.health import RuntimeHealth
from sluice_runtime.metrics import ProbeServer, Route, probe_route
from sluice_runtime.pod_view import merge_health, merge_metrics
from sluice_runtime.udf_pool import make_undumpable

log = logging.getLogger("sluice.processes")

SCRAPE_TIMEOUT = 3.0
"""Seconds to wait for one process's endpoint (the kubelet's probes time out after 5)."""
STOP_MARGIN = 15.0
"""Seconds past the grace period before a process that has not exited is killed."""
_PR_SET_PDEATHSIG = 1


def announce_port(path: Path, port: int) -> None:
    """Tell the supervisor where a process's probes listen (written whole, then renamed,
    so it never reads half a number)."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(str(port))
    partial.replace(path)


def per_process_rate(requests_per_second: float, processes: int) -> float:
    """One process's share of the pod's rate limit, rounded down so the shares never add
    up to more than the whole (as the operator shares it among replicas)."""
    if processes <= 1:
        return requests_per_second
    return max(math.floor(requests_per_second / processes * 1000) / 1000, 0.001)


def for_one_process(connector: Connector) -> Connector:
    """The Connector as one of the pod's runtime processes runs it: its share of the rate
    limit (the pod's share is what the operator rendered)."""
    spec = connector.spec
    processes = spec.scaling.processes_per_replica
    limit = spec.delivery.rate_limit
    if processes <= 1 or limit is None:
        return connector
    share = limit.model_copy(
        update={"requests_per_second": per_process_rate(limit.requests_per_second, processes)}
    )
    delivery = spec.delivery.model_copy(update={"rate_limit": share})
    return connector.model_copy(update={"spec": spec.model_copy(update={"delivery": delivery})})


def follow_supervisor() -> None:
    """Called first thing in a runtime process: receive SIGTERM if the supervisor dies
    (killed, say), so that no runtime process outlives it holding partitions and none
    drains unseen (Linux; elsewhere a no-op). Set by the process itself rather than
    between fork and exec, which is unsafe in a parent that runs threads."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class RuntimeProcess:
    index: int
    process: subprocess.Popen[bytes]
    port_file: Path
    port: int | None = None

    def read_port(self) -> int | None:
        if self.port is None:
            with contextlib.suppress(OSError, ValueError):
                self.port = int(self.port_file.read_text())
        return self.port

    def get(self, path: str) -> tuple[int, bytes]:
        """(status, body) of one of its endpoints; (0, reason) when it does not answer."""
        if self.port is None:
            return 0, b"not listening yet"
        url = f"http://127.0.0.1:{self.port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=SCRAPE_TIMEOUT) as response:
                return int(response.status), bytes(response.read())
        except urllib.error.HTTPError as error:
            return int(error.code), bytes(error.read())
        except OSError as error:
            return 0, str(error).encode()


class Supervisor:
    """Starts the pod's runtime processes, serves their merged endpoints, fails the pod
    when one exits and drains them all on SIGTERM."""

    def __init__(
        self,
        command: Sequence[str],
        processes: int,
        metrics_port: int | None,
        grace: float,
        *,
        poll_interval: float = 0.2,
    ) -> None:
        """``command``: how to start one runtime process (``sluice run`` with the same
        manifest); ``--process-index`` and ``--port-file`` are added to it."""
        self.command = list(command)
        self.count = processes
        self.metrics_port = metrics_port
        self.grace = grace
        self.poll_interval = poll_interval
        self.processes: list[RuntimeProcess] = []
        self.server: ProbeServer | None = None
        self.stopping = threading.Event()
        self.failed: RuntimeProcess | None = None
        self._dir = Path(tempfile.mkdtemp(prefix="sluice-processes-"))

    # The pod's endpoints, answered on the probe server's threads.

    def metrics(self) -> tuple[int, bytes, str]:
        texts = []
        for runtime in self.processes:
            status, body = runtime.get("/metrics")
            if status == 200:
                texts.append(body.decode())
        return 200, merge_metrics(texts), "text/plain; version=0.0.4; charset=utf-8"

    def status(self) -> tuple[int, bytes, str]:
        parts = []
        for runtime in self.processes:
            status, body = runtime.get(STATUS_PATH)
            if status == 200:
                with contextlib.suppress(ValueError):
                    parts.append(RuntimeHealth.model_validate_json(body))
        return 200, merge_health(parts).model_dump_json(by_alias=True).encode(), "application/json"

    def _every(self, path: str) -> bool:
        """Every process is running and answers 200 on ``path``."""
        return len(self.processes) == self.count and all(
            runtime.process.poll() is None and runtime.get(path)[0] == 200
            for runtime in self.processes
        )

    def alive(self) -> bool:
        return self._every("/healthz")

    def ready(self) -> bool:
        return not self.stopping.is_set() and self._every("/readyz")

    def routes(self) -> dict[str, Route]:
        return {
            "/metrics": self.metrics,
            "/healthz": probe_route(self.alive, b"a runtime process is stuck or gone\n"),
            "/readyz": probe_route(self.ready, b"not ready\n"),
            STATUS_PATH: self.status,
        }

    # Life cycle.

    def start(self) -> None:
        # This process holds the pod's Secrets in its environment, and the runtime
        # processes' UDF workers run as the same user: keep them out of /proc/<pid>/environ
        # here too (each runtime process does the same for itself).
        make_undumpable()
        for index in range(self.count):
            if self.stopping.is_set():
                break  # SIGTERM while starting: start no more
            port_file = self._dir / f"process-{index}.port"
            command = [
                *self.command,
                "--process-index",
                str(index),
                "--port-file",
                str(port_file),
            ]
            env = {**os.environ, PROCESS_INDEX_ENV: str(index)}
            process = subprocess.Popen(command, env=env)
            self.processes.append(RuntimeProcess(index, process, port_file))
        log.info("Started %d runtime processes", self.count)
        if self.metrics_port is not None:
            self.server = ProbeServer(self.routes(), self.metrics_port).start()

    def stop(self) -> None:
        """Ask every process to drain and exit (SIGTERM); safe to call more than once."""
        if self.stopping.is_set():
            return
        self.stopping.set()
        for runtime in self.processes:
            if runtime.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    runtime.process.send_signal(signal.SIGTERM)

    def watch(self) -> int:
        """Until every process has exited; returns the pod's exit code."""
        deadline: float | None = None
        while True:
            running = []
            for runtime in self.processes:
                runtime.read_port()
                code = runtime.process.poll()
                if code is None:
                    running.append(runtime)
                elif not self.stopping.is_set():
                    self.failed = runtime
                    log.critical(
                        "Runtime process %d exited with %s; stopping the others so the pod"
                        " restarts (the group hands its partitions to the remaining members)",
                        runtime.index,
                        code,
                    )
                    self.stop()
            if not running:
                break
            if self.stopping.is_set():
                deadline = deadline or time.monotonic() + self.grace + STOP_MARGIN
                if time.monotonic() > deadline:
                    for runtime in running:
                        log.error("Runtime process %d did not stop; killing it", runtime.index)
                        runtime.process.kill()
            time.sleep(self.poll_interval)
        if self.server is not None:
            self.server.stop()
        shutil.rmtree(self._dir, ignore_errors=True)
        codes = [runtime.process.returncode for runtime in self.processes]
        log.info("Runtime processes exited: %s", ", ".join(str(code) for code in codes))
        if self.failed is not None:
            # Its own code when it said why (2: the spec, as a single process exits).
            code = self.failed.process.returncode
            return code if code > 0 else 1
        return 0 if all(code == 0 for code in codes) else 1


def run_supervised(
    command: Sequence[str],
    processes: int,
    metrics_port: int | None,
    grace: float,
    on_start: Callable[[Supervisor], None] | None = None,
    before_stop: Callable[[Supervisor], None] | None = None,
) -> int:
    """``sluice run`` for a pod of several runtime processes: start them, serve their
    merged endpoints, stop them all on SIGTERM/SIGINT, fail when one fails. ``on_start``
    and ``before_stop`` (on the signal) are for the benchmark's runner."""
    supervisor = Supervisor(command, processes, metrics_port, grace)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("Stopping %d runtime processes (%s)", processes, signal.Signals(signum).name)
        if before_stop is not None and not supervisor.stopping.is_set():
            before_stop(supervisor)
        supervisor.stop()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)
    supervisor.start()
    if on_start is not None:
        on_start(supervisor)
    return supervisor.watch()
