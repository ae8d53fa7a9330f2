"""Delivering one batch: retries, partial failures and bisection.

``Deliverer.deliver`` returns only when every event is either delivered or has failed for
good (the caller hands those to the failure policy). When the policy blocks
(``errorTolerance: none``) nothing fails for good: the policy holds the partition at the
poison event, which is sent again every ``maxDelay`` until it goes through or the runtime
stops, and the events behind it wait.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from sluice_runtime.config import Delivery
from sluice_runtime.failures import FailurePolicy
from sluice_runtime.metrics import Metrics
from sluice_runtime.payload import Request
from sluice_runtime.ratelimit import AdaptiveLimiter
from sluice_runtime.records import Deliverable, RecordFailure
from sluice_runtime.retry import RetrySchedule
from sluice_runtime.sink import SendResult

log = logging.getLogger("sluice.delivery")

Send = Callable[[Sequence[Deliverable], Request | None], Awaitable[SendResult]]
"""Sends events, with their request built already or not (None)."""
Prepare = Callable[[Sequence[Deliverable]], Request]
Delivered = Callable[[list[Deliverable]], None]


@dataclass
class Deliverer:
    send: Send
    delivery: Delivery
    metrics: Metrics
    limiter: AdaptiveLimiter
    failures: FailurePolicy  # whether to hold the partition; how to wait (abort-aware)
    schedule: RetrySchedule | None = None
    clock: Callable[[], float] = time.monotonic
    prepare: Prepare | None = None  # builds a batch's request ahead of its turn

    def __post_init__(self) -> None:
        if self.schedule is None:
            self.schedule = RetrySchedule(self.delivery.retry)

    async def deliver(
        self,
        events: Sequence[Deliverable],
        on_delivered: Delivered,
        prepared: Request | None = None,
    ) -> list[tuple[Deliverable, RecordFailure]]:
        """Deliver in order; returns the events that failed for good, with why.

        ``on_delivered`` is told as soon as some events went through, so a partition blocked
        on one record still commits everything before it. ``prepared`` is the request for
        exactly ``events``, built earlier (see ``BatchStream._dispatch``).
        """
        pending, last = await self._attempt_with_retries(events, on_delivered, prepared)
        if not pending:
            return []
        assert last is not None
        # Bisect when the function rejected a batch as a whole for its content (a
        # non-retryable answer): that isolates the poison records. The events a partial
        # failure names are isolated already, and bisecting them would give each half a
        # fresh retry budget; they take the failure path together, except when the policy
        # holds the partition, which must wait at each poison event alone (one it now
        # accepts goes through). Exhausted retries against an unavailable function are not
        # bisected: that would only multiply the waiting.
        partial = bool(last.failed_ids)
        if len(pending) > 1 and (
            (not last.retryable and not partial) or (partial and self.failures.blocks)
        ):
            middle = len(pending) // 2
            failed = await self.deliver(pending[:middle], on_delivered)
            failed += await self.deliver(pending[middle:], on_delivered)
            return failed
        failure = RecordFailure("deliver", last.reason, last.status, self._attempts)
        if self.failures.blocks:
            await self.failures.hold(
                pending[0].event_id, failure, lambda: self._resend(pending), pending[0].record
            )
            on_delivered(pending)
            return []
        return [(event, failure) for event in pending]

    async def _attempt_with_retries(
        self, events: Sequence[Deliverable], on_delivered: Delivered, prepared: Request | None
    ) -> tuple[list[Deliverable], SendResult | None]:
        assert self.schedule is not None
        pending = list(events)
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
                named = [event for event in pending if event.event_id in result.failed_ids]
                # An answer naming no event we sent is treated as a failure of all of them.
                if named:
                    on_delivered(
                        [event for event in pending if event.event_id not in result.failed_ids]
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

    async def _resend(self, events: list[Deliverable]) -> bool | None:
        """One more attempt while the partition is held: True once delivered."""
        return True if (await self._send(events, None)).ok else None

    async def _send(self, events: Sequence[Deliverable], prepared: Request | None) -> SendResult:
        await self.limiter.acquire()
        try:
            started = time.perf_counter()
            result = await self.send(events, prepared)
            self.metrics.request_duration.observe(time.perf_counter() - started)
        finally:
            await self.limiter.release()
        self.limiter.feedback(result.status)
        if self.failures.health is not None:
            self.failures.health.sink_answered(result.status, result.ok, result.reason)
        return result

    async def _sleep(self, seconds: float) -> None:
        await self.failures.wait(seconds)

    _attempts: int = 0


def _reason_label(result: SendResult) -> str:
    if result.status is None:
        return "timeout" if result.reason.startswith("timeout") else "connection"
    if result.failed_ids:
        return "partial"
    return str(result.status)
