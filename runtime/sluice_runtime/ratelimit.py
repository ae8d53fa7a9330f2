"""Request rate limiting and adaptive concurrency for one runtime process.

- A token bucket caps requests per second (``delivery.rateLimit``; the operator divides the
  Connector's figure among replicas).
- AIMD concurrency: throttling answers (429, 503) halve the number of requests allowed in
  flight; each success grows it back by a small step, up to the configured ceiling. Lanes
  that cannot get a slot wait, their buffers fill, and their partitions pause.
"""

from __future__ import annotations

import asyncio
import time

from sluice_runtime.metrics import Metrics

THROTTLE_STATUS = frozenset({429, 503})


class AdaptiveLimiter:
    def __init__(
        self, max_concurrency: int, requests_per_second: float | None, metrics: Metrics
    ) -> None:
        self.max_concurrency = max_concurrency
        self.limit = float(max_concurrency)
        self.in_flight = 0
        self._changed = asyncio.Condition()
        self._waiting = 0
        self._rate = requests_per_second
        self._tokens = 1.0 if requests_per_second else 0.0
        self._refilled = time.monotonic()
        self._metrics = metrics
        metrics.concurrency_limit.set(self.limit)

    async def acquire(self) -> None:
        """Wait for a request slot (and a token); pair with ``release``."""
        # The common case, room and nobody queued, costs no lock: this runs per request.
        if self._waiting or self.in_flight >= int(self.limit):
            async with self._changed:
                self._waiting += 1
                try:
                    await self._changed.wait_for(lambda: self.in_flight < int(self.limit))
                finally:
                    self._waiting -= 1
        self.in_flight += 1
        try:
            await self._take_token()
        except BaseException:
            await self.release()
            raise

    async def release(self) -> None:
        self.in_flight -= 1
        if self._waiting:
            async with self._changed:
                self._changed.notify_all()

    async def _take_token(self) -> None:
        if not self._rate:
            return
        while True:
            now = time.monotonic()
            # Burst of at most one second's worth keeps the cap honest after idle periods.
            self._tokens = min(self._rate, self._tokens + (now - self._refilled) * self._rate)
            self._refilled = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return
            self._metrics.rate_limited_waits.inc()
            await asyncio.sleep((1.0 - self._tokens) / self._rate)

    def feedback(self, status: int | None) -> None:
        if status in THROTTLE_STATUS:
            self.limit = max(1.0, self.limit / 2)
        elif status is not None and 200 <= status < 300 and self.limit < self.max_concurrency:
            self.limit = min(float(self.max_concurrency), self.limit + 1.0 / max(self.limit, 1.0))
        else:
            return
        self._metrics.concurrency_limit.set(self.limit)
