"""The operator's work queue: when and where reconciles run, apart from what they do.

- one reconcile at a time per Connector (the timer, the change handlers and the Deployment
  watch overlap);
- on worker threads, the reconcile's I/O being blocking: changes a user made get their
  own pool, so periodic re-checks of many Connectors never delay the reaction to an edit;
- a Deployment watch event counts only when it changes what the status says about it;
- while Kafka or the sink cannot be reached, timer re-checks back off (``Backoff``);
- metrics and logs of every reconcile.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from sluice_operator.metrics import OperatorMetrics
from sluice_operator.reconcile import Outcome

log = logging.getLogger("sluice.operator")

Reconcile = Callable[[str, str], Outcome]
"""(namespace, name) → one reconcile of that Connector."""


class Backoff:
    """When a failing Connector is next retried by the timer: after one interval, then
    doubling up to a cap, and back to every interval once it succeeds."""

    def __init__(self, base: float, cap: float) -> None:
        self.base = base
        self.cap = cap
        self._failures: dict[str, int] = {}
        self._next: dict[str, float] = {}
        self._lock = threading.Lock()

    def due(self, key: str, now: float) -> bool:
        with self._lock:
            return now >= self._next.get(key, 0.0)

    def record(self, key: str, ok: bool, now: float) -> float | None:
        """Returns the wait before the next attempt after a failure."""
        with self._lock:
            if ok:
                self._failures.pop(key, None)
                self._next.pop(key, None)
                return None
            failures = self._failures.get(key, 0) + 1
            self._failures[key] = failures
            delay: float = min(self.base * 2.0 ** (failures - 1), self.cap)
            # Half an interval early, so the timer tick that lands just before is not lost.
            self._next[key] = now + delay - self.base / 2
            return delay

    def forget(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)
            self._next.pop(key, None)


class WorkQueue:
    def __init__(
        self, reconcile: Reconcile, workers: int, backoff: Backoff, metrics: OperatorMetrics
    ) -> None:
        self.reconcile = reconcile
        self.workers = workers
        self.backoff = backoff
        self.metrics = metrics
        self._lock = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._deployments: dict[str, tuple[Any, ...]] = {}
        self._pools: dict[str, ThreadPoolExecutor] = {}

    async def submit(self, namespace: str, name: str, trigger: str) -> None:
        """Runs one reconcile on a worker thread and waits for it. ``trigger`` is change,
        timer or deployment."""
        kind = "change" if trigger == "change" else "background"
        with self._lock:
            pool = self._pools.get(kind)
            if pool is None:
                workers = self.workers if kind == "change" else max(2, self.workers // 4)
                pool = ThreadPoolExecutor(workers, thread_name_prefix=f"reconcile-{kind}")
                self._pools[kind] = pool
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(pool, self.run, namespace, name, trigger)

    def run(self, namespace: str, name: str, trigger: str) -> Outcome | None:
        """A reconcile with what surrounds it; None when the timer's turn was skipped for
        backoff. Unexpected errors propagate (kopf retries the handler)."""
        key = f"{namespace}/{name}"
        if trigger == "timer" and not self.backoff.due(key, time.monotonic()):
            return None
        with self._serialized(key):
            started = time.perf_counter()
            try:
                outcome = self.reconcile(namespace, name)
            except Exception as error:
                self.metrics.errors.labels(error=type(error).__name__).inc()
                self.metrics.reconciles.labels(trigger=trigger, result="error").inc()
                raise
            finally:
                self.metrics.duration.observe(time.perf_counter() - started)
        if outcome.gone:
            self.forget(key)
            result = "gone"
        else:
            result = "retry" if outcome.retry else "ok"
            wait = self.backoff.record(key, not outcome.retry, time.monotonic())
            if wait is not None:
                log.info("Deferred Connector %s: unreachable, retrying in %.0fs", key, wait)
        self.metrics.reconciles.labels(trigger=trigger, result=result).inc()
        if not outcome.applied and not outcome.status_written:
            log.debug("Reconciled Connector %s: nothing changed", key)
        return outcome

    @contextmanager
    def _serialized(self, key: str) -> Iterator[None]:
        with self._lock:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            yield

    def forget(self, key: str) -> None:
        """Drops what is kept about a deleted Connector (``namespace/name``)."""
        with self._lock:
            self._locks.pop(key, None)
            self._deployments.pop(key, None)
        self.backoff.forget(key)

    def deployment_changed(
        self, namespace: str, connector: str, deployment: Mapping[str, Any], deleted: bool
    ) -> bool:
        """Whether a watch event on a runtime Deployment changes what the Connector's
        status says about it (most events are the controllers' bookkeeping)."""
        key = f"{namespace}/{connector}"
        spec = deployment.get("spec") or {}
        status = deployment.get("status") or {}
        seen = (
            deleted,
            (deployment.get("metadata") or {}).get("generation"),
            spec.get("replicas"),
            status.get("observedGeneration"),
            status.get("updatedReplicas"),
            status.get("readyReplicas"),
            status.get("availableReplicas"),
        )
        with self._lock:
            changed = self._deployments.get(key) != seen
            self._deployments[key] = seen
        return changed

    def close(self) -> None:
        for pool in self._pools.values():
            pool.shutdown(wait=True, cancel_futures=True)
