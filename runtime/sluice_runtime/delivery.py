"""Delivering one batch: retries, partial failures, bisection and error tolerance.

``Deliverer.deliver`` returns only when every item is either delivered or has failed for
good (the caller sends those to the failure path). With ``errorTolerance: none`` nothing
fails for good: the poison item is retried at ``maxDelay`` until it goes through or the
runtime stops, and the items behind it wait, so the partition blocks at that record.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from sluice_runtime.config import Delivery
from sluice_runtime.metrics import Metrics
from sluice_runtime.payload import Request
from sluice_runtime.processors import RecordFailure
from sluice_runtime.ratelimit import AdaptiveLimiter
from sluice_runtime.retry import RetrySchedule
from sluice_runtime.sink import SendResult
from sluice_runtime.units import format_duration
from sluice_runtime.window import Item

log = logging.getLogger("sluice.delivery")

Send = Callable[[Sequence[Item], Request | None], Awaitable[SendResult]]
"""Sends items, with their request built already or not (None)."""
Prepare = Callable[[Sequence[Item]], Request]
Delivered = Callable[[list[Item]], None]


class Stopping(Exception):
    """Raised out of a blocked delivery when the runtime shuts down."""


@dataclass
class Deliverer:
    send: Send
    delivery: Delivery
    metrics: Metrics
    limiter: AdaptiveLimiter
    stopping: asyncio.Event
    schedule: RetrySchedule | None = None
    clock: Callable[[], float] = time.monotonic
    prepare: Prepare | None = None  # builds a batch's request ahead of its turn

    def __post_init__(self) -> None:
        if self.schedule is None:
            self.schedule = RetrySchedule(self.delivery.retry)

    async def deliver(
        self, items: Sequence[Item], on_delivered: Delivered, prepared: Request | None = None
    ) -> list[tuple[Item, RecordFailure]]:
        """Deliver in order; returns the items that failed for good, with why.

        ``on_delivered`` is told as soon as some items went through, so a partition blocked
        on one record still commits everything before it. ``prepared`` is the request for
        exactly ``items``, built earlier (see ``Slot._dispatch``).
        """
        pending, last = await self._attempt_with_retries(items, on_delivered, prepared)
        if not pending:
            return []
        assert last is not None
        # Bisect only when the function rejected the content (a non-retryable answer or a
        # partial failure): that isolates the poison records. Exhausted retries against an
        # unavailable function would only multiply the waiting.
        if len(pending) > 1 and (not last.retryable or last.failed_ids):
            middle = len(pending) // 2
            failures = await self.deliver(pending[:middle], on_delivered)
            failures += await self.deliver(pending[middle:], on_delivered)
            return failures
        if self.delivery.error_tolerance == "none":
            await self._block_until_delivered(pending)
            on_delivered(pending)
            return []
        attempts = self._attempts
        failure = RecordFailure("deliver", last.reason, last.status, attempts)
        return [(item, failure) for item in pending]

    async def _attempt_with_retries(
        self, items: Sequence[Item], on_delivered: Delivered, prepared: Request | None
    ) -> tuple[list[Item], SendResult | None]:
        assert self.schedule is not None
        pending = list(items)
        started = self.clock()
        attempts = 0
        while True:
            attempts += 1
            result = await self._send(pending, prepared)
            if result.ok:
                self._attempts = attempts
                on_delivered(pending)
                return [], result
            if result.failed_ids:
                named = [item for item in pending if item.event_id in result.failed_ids]
                # An answer naming no item we sent is treated as a failure of all of them.
                if named:
                    on_delivered(
                        [item for item in pending if item.event_id not in result.failed_ids]
                    )
                    pending = named
                    prepared = None  # it was for the whole batch
            self.metrics.retries.labels(reason=_reason_label(result)).inc()
            delay = (
                self.schedule.next_delay(attempts, self.clock() - started, result.retry_after)
                if result.retryable
                else None
            )
            if delay is None:
                self._attempts = attempts
                return pending, result
            await self._sleep(delay)

    async def _block_until_delivered(self, items: list[Item]) -> None:
        """errorTolerance none: hold the partition at this record until it goes through."""
        first = items[0].record
        self.metrics.blocked_partitions.inc()
        try:
            while True:
                log.warning(
                    "Delivery blocked at %s (errorTolerance none); retrying in %s",
                    first.event_id,
                    format_duration(self.delivery.retry.max_delay),
                )
                await self._sleep(self.delivery.retry.max_delay)
                result = await self._send(items, None)
                if result.ok:
                    log.info("Delivery unblocked at %s", first.event_id)
                    return
        finally:
            self.metrics.blocked_partitions.dec()

    async def _send(self, items: Sequence[Item], prepared: Request | None) -> SendResult:
        await self.limiter.acquire()
        try:
            started = time.perf_counter()
            result = await self.send(items, prepared)
            self.metrics.request_duration.observe(time.perf_counter() - started)
        finally:
            await self.limiter.release()
        self.limiter.feedback(result.status)
        return result

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake at once when the runtime stops."""
        try:
            await asyncio.wait_for(self.stopping.wait(), timeout=seconds)
        except TimeoutError:
            return
        raise Stopping

    _attempts: int = 0


def _reason_label(result: SendResult) -> str:
    if result.status is None:
        return "timeout" if result.reason.startswith("timeout") else "connection"
    if result.failed_ids:
        return "partial"
    return str(result.status)
