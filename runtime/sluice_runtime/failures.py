"""The failure policy: what happens to a record that failed, in one place.

    RecordFailure ─┬─ errorTolerance none ─▶ hold: the partition waits at the record and
                   │                         tries again every retry.maxDelay until it
                   │                         goes through (or the runtime stops)
                   └─ errorTolerance all ──▶ settle: dead-letter it (DEAD_LETTERED once the
                                             broker confirmed the write; while the DLQ
                                             cannot be written, the partition waits), or,
                                             with no DLQ set, drop it (DROPPED, counted)

Either way nothing is committed past a record that went nowhere: a held record blocks its
partition's offset, and a record whose DLQ write is not confirmed is not settled.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sluice_runtime.config import Delivery
from sluice_runtime.deadletter import DeadLetterWriter
from sluice_runtime.health import HealthTracker
from sluice_runtime.metrics import Metrics
from sluice_runtime.records import Outcome, Record, RecordFailure, Stopping
from sluice_runtime.units import format_duration

log = logging.getLogger("sluice.failures")

DEAD_LETTER_RETRY_DELAYS = (0.5, 1, 2, 5, 10, 30)

T = TypeVar("T")


class FailurePolicy:
    def __init__(
        self,
        delivery: Delivery,
        dead_letter: DeadLetterWriter | None,
        metrics: Metrics,
        abort: asyncio.Event,
        health: HealthTracker | None = None,
    ) -> None:
        self.health = health
        self.blocks = delivery.error_tolerance == "none"
        self.retry_every = delivery.retry.max_delay
        self.dead_letter = dead_letter
        self.metrics = metrics
        self.abort = abort

    async def hold(
        self,
        where: str,
        failure: RecordFailure,
        attempt: Callable[[], Awaitable[T | None]],
        record: Record | None = None,
    ) -> T:
        """errorTolerance none: the partition waits at ``where`` (a record or event id);
        ``attempt`` is tried again every ``maxDelay`` until it returns a result. ``record``
        (the one waited at) names the partition and offset in the health report."""
        self.metrics.blocked_partitions.inc()
        token = (
            self.health.blocked(record.topic, record.partition, record.offset, failure)
            if self.health is not None and record is not None
            else None
        )
        try:
            while True:
                log.warning(
                    "Partition blocked at %s (errorTolerance none): %s failed: %s; retrying in %s",
                    where,
                    failure.stage,
                    failure.reason,
                    format_duration(self.retry_every),
                )
                await self.wait(self.retry_every)
                result = await attempt()
                if result is not None:
                    log.info("Partition unblocked at %s", where)
                    return result
        finally:
            self.metrics.blocked_partitions.dec()
            if self.health is not None and token is not None:
                self.health.unblocked(token)

    async def settle(self, record: Record, failure: RecordFailure) -> Outcome:
        """errorTolerance all: dead-letter the record, or drop it when no DLQ is set.
        Returns only once that is done (raises ``Stopping`` if the runtime aborts first)."""
        if self.dead_letter is None:
            self.metrics.dropped.labels(stage=failure.stage).inc()
            log.warning(
                "Dropped record %s (no dead-letter queue): %s failed: %s",
                record.event_id,
                failure.stage,
                failure.reason,
            )
            return Outcome.DROPPED
        attempt = 0
        while True:
            error = await self.dead_letter.write(record, failure)
            if error is None:
                if self.health is not None:
                    self.health.dead_letter_written()
                self.metrics.dead_lettered.labels(stage=failure.stage).inc()
                log.info(
                    "Dead-lettered record %s to %s: %s failed: %s",
                    record.event_id,
                    self.dead_letter.topic,
                    failure.stage,
                    failure.reason,
                )
                return Outcome.DEAD_LETTERED
            if self.health is not None:
                self.health.dead_letter_failed(f"{self.dead_letter.topic}: {error}")
            delay = DEAD_LETTER_RETRY_DELAYS[min(attempt, len(DEAD_LETTER_RETRY_DELAYS) - 1)]
            attempt += 1
            log.error(
                "Could not write record %s to the dead-letter topic %s (%s); the partition "
                "waits and retries in %ss",
                record.event_id,
                self.dead_letter.topic,
                error,
                delay,
            )
            await self.wait(delay)

    async def wait(self, seconds: float) -> None:
        """Sleep, but raise ``Stopping`` at once when the runtime aborts."""
        try:
            await asyncio.wait_for(self.abort.wait(), timeout=seconds)
        except TimeoutError:
            return
        raise Stopping
