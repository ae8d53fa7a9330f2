"""Child processes with a line protocol on stdin/stdout and their memory figures."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from bench import ROOT


class BenchError(RuntimeError):
    """A benchmark that could not run; the message says why."""


def proc_status_kb(pid: int, field: str) -> int | None:
    """A ``/proc/<pid>/status`` figure in kB (VmHWM = peak RSS, VmRSS = current RSS)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time a process used so far."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def process_tree(pid: int) -> list[int]:
    """``pid`` and every process below it (a runtime's UDF worker, a pod's runtime
    processes), alive now."""
    tree = [pid]
    for parent in tree:
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{parent}/task/{task}/children") as children:
                    tree += [int(child) for child in children.read().split()]
            except (OSError, ValueError):
                continue
    return tree


class Child:
    """A Python module run as a child process (``python -m module``).

    Its stdout is read line by line on a thread; stderr goes to ``log``. Commands are
    written to its stdin, one per line; JSON answers are lines starting with ``{``.
    """

    def __init__(self, name: str, module: str, args: list[str], log: Path) -> None:
        self.name = name
        self.log = log
        self._lines: queue.Queue[str | None] = queue.Queue()
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p
            ),
        }
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", module, *args],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                cwd=ROOT,
                env=env,
                text=True,
                bufsize=1,
            )
        self.pid = self.process.pid
        self._reader = threading.Thread(target=self._read, daemon=True, name=f"{name}-stdout")
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def expect(self, prefix: str, timeout: float) -> str:
        """The next stdout line starting with ``prefix`` (other lines are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BenchError(
                    f"{self.name}: no {prefix!r} line within {timeout:.0f}s; "
                    f"log {self.log}:\n{self.log_tail()}"
                )
            try:
                line = self._lines.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                continue
            if line is None:
                self._lines.put(None)  # keep reporting the end to later calls
                raise BenchError(
                    f"{self.name} exited (code {self.process.poll()}) before {prefix!r}; "
                    f"log {self.log}:\n{self.log_tail()}"
                )
            if line.startswith(prefix):
                return line

    def ask(self, command: str, timeout: float = 10.0) -> dict[str, Any]:
        """Send a command line; return its JSON answer."""
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(command + "\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError) as error:
            raise BenchError(f"{self.name} is gone: {error}; log:\n{self.log_tail()}") from None
        answer: dict[str, Any] = json.loads(self.expect("{", timeout))
        return answer

    def peak_rss_mb(self) -> float | None:
        """The peak RSS of the process and its children (each one's peak, added up)."""
        peaks = [proc_status_kb(pid, "VmHWM") for pid in process_tree(self.pid)]
        known = [kb for kb in peaks if kb is not None]
        return sum(known) / 1024 if known else None

    def rss_mb(self) -> float | None:
        kb = proc_status_kb(self.pid, "VmRSS")
        return None if kb is None else kb / 1024

    def cpu_seconds(self) -> float | None:
        """CPU time of the process and its children alive now (a UDF worker, a pod's
        runtime processes): what the pod would be charged."""
        used = [cpu_seconds(pid) for pid in process_tree(self.pid)]
        known = [seconds for seconds in used if seconds is not None]
        return sum(known) if known else None

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 30.0, sig: int = signal.SIGTERM) -> int:
        """Signal the process, wait for it (killing it after ``timeout``), return its code."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        self._reader.join(5)
        return self.process.returncode

    def __enter__(self) -> Child:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop(timeout=10)
