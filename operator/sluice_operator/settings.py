"""The operator's own configuration, from environment variables (each documented here).

Per-Connector choices live in the Connector; these are the operator-wide defaults and
timings. Invalid values stop the operator at start with a message naming the variable.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, TypeVar

DEFAULT_RUNTIME_IMAGE = "ghcr.io/sluice-dev/sluice:0.1.0"

T = TypeVar("T")


@dataclass(frozen=True)
class OperatorConfig:
    runtime_image: str = DEFAULT_RUNTIME_IMAGE
    """SLUICE_RUNTIME_IMAGE: the runtime pods' image unless a Connector sets
    spec.runtime.image."""

    timer_interval: float = 10.0
    """SLUICE_OPERATOR_TIMER_INTERVAL: seconds between re-reads of partitions, lag and the
    Deployment's state for each Connector (new partitions are picked up within it)."""

    backoff_max: float = 120.0
    """SLUICE_OPERATOR_BACKOFF_MAX: longest wait between retries of a Connector whose Kafka
    or sink cannot be reached (the wait starts at the timer interval and doubles)."""

    kafka_timeout: float = 5.0
    """SLUICE_OPERATOR_KAFKA_TIMEOUT: seconds one Kafka admin request may take."""

    workers: int = 16
    """SLUICE_OPERATOR_WORKERS: Connectors reconciled at the same time."""

    cluster_domain: str = "cluster.local"
    """SLUICE_CLUSTER_DOMAIN: the DNS domain of Service addresses (sink.ref to a Service)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OperatorConfig:
        env = os.environ if env is None else env
        parsers: dict[str, tuple[str, Callable[[str], Any]]] = {
            "runtime_image": ("SLUICE_RUNTIME_IMAGE", _text),
            "timer_interval": ("SLUICE_OPERATOR_TIMER_INTERVAL", _positive(float)),
            "backoff_max": ("SLUICE_OPERATOR_BACKOFF_MAX", _positive(float)),
            "kafka_timeout": ("SLUICE_OPERATOR_KAFKA_TIMEOUT", _positive(float)),
            "workers": ("SLUICE_OPERATOR_WORKERS", _positive(int)),
            "cluster_domain": ("SLUICE_CLUSTER_DOMAIN", _text),
        }
        assert set(parsers) == {f.name for f in fields(cls)}
        values: dict[str, Any] = {}
        for field_name, (variable, parse) in parsers.items():
            raw = env.get(variable)
            if raw is None or raw == "":
                continue
            try:
                values[field_name] = parse(raw)
            except ValueError as error:
                raise ValueError(f"{variable}={raw!r}: {error}") from None
        return cls(**values)


def _text(raw: str) -> str:
    return raw.strip()


def _positive(kind: Callable[[str], T]) -> Callable[[str], T]:
    def parse(raw: str) -> T:
        value = kind(raw)
        if not value > 0:  # type: ignore[operator]
            raise ValueError("must be greater than zero")
        return value

    return parse
