"""Calls per second of a hot-path function, for the micro-benchmarks of patterns and
transforms (run from `make bench`, never from tests)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def calls_per_second(
    function: Callable[[Any], Any], argument: Any, seconds: float, batch: int = 1000
) -> float:
    """Calls ``function(argument)`` in batches (so the clock is read rarely) for ``seconds``."""
    calls = 0
    started = time.perf_counter()
    deadline = started + seconds
    while True:
        for _ in range(batch):
            function(argument)
        calls += batch
        now = time.perf_counter()
        if now >= deadline:
            return calls / (now - started)
