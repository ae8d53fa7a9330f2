"""A micro-benchmark of the hot path: one typical pattern against one record envelope."""

from __future__ import annotations

from typing import Any, Final

from bench.microbench import calls_per_second
from sluice_runtime.patterns.compile import compile_pattern

TYPICAL_PATTERN: Final[dict[str, Any]] = {
    "value": {
        "device": [{"prefix": "ios"}],
        "amount": [{"numeric": [">", 0]}],
        "country": ["US", "CA"],
    }
}


def _envelope(value: dict[str, Any]) -> dict[str, Any]:
    return {
        "topic": "ad-views",
        "partition": 3,
        "offset": 1042,
        "timestamp": 1732700000000,
        "key": "user-17",
        "headers": {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
        "value": value,
    }


MATCHING_EVENT: Final = _envelope({"device": "ios-17", "amount": 12.5, "country": "US"})
# Fails on the last field, so every check runs: the slowest way not to match.
NON_MATCHING_EVENT: Final = _envelope({"device": "ios-17", "amount": 12.5, "country": "FR"})


def bench_patterns(seconds: float = 1.0) -> dict[str, float]:
    """Evaluations per second of :data:`TYPICAL_PATTERN`, each event measured for about
    half of ``seconds``."""
    matches = compile_pattern(TYPICAL_PATTERN)
    if not matches(MATCHING_EVENT) or matches(NON_MATCHING_EVENT):
        raise AssertionError("the benchmark pattern does not behave as expected")
    return {
        "match_per_s": calls_per_second(matches, MATCHING_EVENT, seconds / 2, batch=10_000),
        "no_match_per_s": calls_per_second(matches, NON_MATCHING_EVENT, seconds / 2, batch=10_000),
    }
