"""Retry schedules, checked exactly with a seeded random source instead of sleeping."""

from __future__ import annotations

import random

from sluice_runtime.config import Retry
from sluice_runtime.retry import RetrySchedule


def schedule(**spec: object) -> RetrySchedule:
    return RetrySchedule(Retry.model_validate(spec), random.Random(7))


def test_exponential_defaults_reproduce_alibaba_decay() -> None:
    s = schedule()
    assert s.max_attempts == 176
    assert [s.ceiling(n) for n in range(1, 12)] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 512]
    # Full jitter: every delay lies between 0 and the ceiling of its attempt.
    elapsed = 0.0
    for attempt in range(1, 40):
        delay = s.next_delay(attempt, elapsed)
        assert delay is not None
        assert 0 <= delay <= s.ceiling(attempt)
        elapsed += delay
    # The 24 h budget: a delay that would end past it is not taken.
    for _ in range(50):
        late = s.next_delay(100, elapsed=86_390)
        assert late is None or late <= 10
    assert s.next_delay(175, elapsed=0) is not None
    assert s.next_delay(176, elapsed=0) is None


def test_retry_duration_bounds_the_schedule() -> None:
    s = schedule(initialDelay="10s", maxDelay="10s", maxRetryDuration="1m")
    assert s.next_delay(1, elapsed=45) is not None
    assert s.next_delay(1, elapsed=60) is None


def test_backoff_is_three_retries_of_ten_to_twenty_seconds() -> None:
    s = schedule(policy="backoff")
    delays = [s.next_delay(n, elapsed=0) for n in (1, 2, 3)]
    assert all(d is not None and 10 <= d <= 20 for d in delays), delays
    assert s.next_delay(4, elapsed=0) is None


def test_none_never_retries() -> None:
    assert schedule(policy="none").next_delay(1, elapsed=0) is None


def test_retry_after_is_honoured_up_to_max_delay() -> None:
    s = schedule(initialDelay="100ms", maxDelay="30s")
    delay = s.next_delay(1, elapsed=0, retry_after=2)
    assert delay is not None
    assert delay >= 2
    capped = s.next_delay(1, elapsed=0, retry_after=3600)
    assert capped == 30
