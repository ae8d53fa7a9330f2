"""The periodic re-check of every Connector (partitions, lag, the Deployment's state).

Kopf's own timers would do, but kopf puts a finalizer on every object that has one, so a
Connector could not be deleted while the operator is down or uninstalled. Instead the
handlers keep an in-memory set of the Connectors the watch reports, and one task walks it,
spreading the re-checks evenly over the interval rather than running them all at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("sluice.operator")

Recheck = Callable[[str, str], Awaitable[None]]
"""(namespace, name) → one reconcile."""


class PeriodicRechecks:
    def __init__(self, interval: float, recheck: Recheck) -> None:
        self.interval = interval
        self.recheck = recheck
        self.known: set[tuple[str, str]] = set()
        self._running: set[tuple[str, str]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None

    def track(self, namespace: str, name: str) -> None:
        self.known.add((namespace, name))

    def untrack(self, namespace: str, name: str) -> None:
        self.known.discard((namespace, name))

    def start(self) -> None:
        self._loop_task = asyncio.get_running_loop().create_task(self._walk())

    async def stop(self) -> None:
        tasks = [*self._tasks, *([self._loop_task] if self._loop_task else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _walk(self) -> None:
        # The create and resume handlers have just reconciled everything seen at start.
        await asyncio.sleep(self.interval)
        while True:
            keys = sorted(self.known)
            if not keys:
                await asyncio.sleep(self.interval)
                continue
            pause = self.interval / len(keys)
            for key in keys:
                # One re-check per Connector at a time: a slow one (Kafka timing out) is
                # skipped this round rather than queued twice.
                if key in self.known and key not in self._running:
                    self._running.add(key)
                    task = asyncio.get_running_loop().create_task(self._one(key))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                await asyncio.sleep(pause)

    async def _one(self, key: tuple[str, str]) -> None:
        try:
            await self.recheck(*key)
        except Exception:
            log.exception("Failed to re-check Connector %s/%s", *key)
        finally:
            self._running.discard(key)
