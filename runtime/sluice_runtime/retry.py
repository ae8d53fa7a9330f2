"""Retry schedules (docs/delivery.md, "Retries"), pure and clock-free so they can be
checked exactly in unit tests instead of by sleeping.

- ``exponential``: full jitter, ``initialDelay`` doubling up to ``maxDelay``; the defaults
  reproduce Alibaba's EXPONENTIAL_DECAY_RETRY (1 s doubling to 512 s, 176 attempts, 24 h);
- ``backoff``: Alibaba's BACKOFF_RETRY, 3 retries each after a random 10 to 20 s;
- ``none``: a single attempt.

Both bounds apply, whichever comes first: ``maxAttempts`` and ``maxRetryDuration``,
measured from the first attempt of a delivery.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from sluice_runtime.config import Retry

BACKOFF_POLICY_ATTEMPTS = 4  # one try and Alibaba's three retries


@dataclass
class RetrySchedule:
    spec: Retry
    rng: random.Random = field(default_factory=random.Random)

    @property
    def max_attempts(self) -> int:
        if self.spec.policy == "none":
            return 1
        if self.spec.policy == "backoff":
            return min(self.spec.max_attempts, BACKOFF_POLICY_ATTEMPTS)
        return self.spec.max_attempts

    def ceiling(self, attempts: int) -> float:
        """The largest delay the exponential policy may pick after ``attempts`` tries."""
        exponent = min(attempts - 1, 62)  # keeps 2**n finite; maxDelay caps it far sooner
        return float(min(self.spec.max_delay, self.spec.initial_delay * (2**exponent)))

    def next_delay(
        self, attempts: int, elapsed: float, retry_after: float | None = None
    ) -> float | None:
        """Seconds to wait before the next attempt, or None to give up.

        ``attempts`` is how many tries were made so far, ``elapsed`` the seconds since the
        first, ``retry_after`` the function's own ``Retry-After`` (honoured up to maxDelay).
        """
        if attempts >= self.max_attempts:
            return None
        if self.spec.policy == "backoff":
            delay = self.rng.uniform(self.spec.backoff_min, self.spec.backoff_max)
        else:
            delay = self.rng.uniform(0.0, self.ceiling(attempts))
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.spec.max_delay))
        if elapsed + delay > self.spec.max_retry_duration:
            return None
        return delay
