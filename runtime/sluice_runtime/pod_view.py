"""One pod's view of several runtime processes: their metrics and health merged into what a
single process would serve (``scaling.processesPerReplica``, ``processes.py``).

The pod keeps its one ``/metrics`` and ``/status``: the supervising process scrapes every
runtime process's own endpoints (on loopback) and merges them, so Prometheus, the probes
and the operator see one pod exactly as before, whatever the number of processes.

Why scrape and merge rather than prometheus_client's multiprocess mode: that mode turns
every metric into a value in a memory-mapped file behind a lock (on the hot path, several
times per record), is switched on for the whole interpreter by an environment variable,
and needs every gauge declared with a mode; here each process keeps its plain in-memory
metrics and the merge applies one rule per metric, below.

Merge rules, chosen so the pod's figure means what a single process's meant:

- counters, histograms (buckets, count and sum): added up. Each process counts its own
  records, so the sum is the pod's count. When a process exits (the pod then stops, see
  ``processes.py``) its counts leave the sum, which Prometheus reads as a counter reset.
- ``*_created`` (a counter's start time): the earliest.
- gauges of a quantity (records and bytes held, batches in flight, paused and blocked
  partitions, the requests allowed in flight): added up, as they are the pod's total.
- gauges of a state (``sluice_reading_throttled``: 1 while a process reads no further): the
  largest, so 1 while any process is throttled.
- gauges per partition (``sluice_lag``, ``sluice_committed_offset``): the largest. A
  partition has one owner in the group and a process forgets a partition's series when it
  loses it, so normally only one process has it; during a hand-over the committed offset
  only grows and the larger lag is the cautious reading.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from sluice_runtime.health import RuntimeHealth, SinkAnswers

LARGEST_GAUGES = frozenset({"sluice_reading_throttled", "sluice_lag", "sluice_committed_offset"})
"""Gauges merged by their largest value; every other gauge is added up (docstring)."""

_SampleKey = tuple[str, tuple[tuple[str, str], ...]]


def _combine(family: Metric, previous: float, value: float) -> float:
    if family.type != "gauge":
        return previous + value
    if family.name.endswith("_created"):
        return min(previous, value)
    if family.name in LARGEST_GAUGES:
        return max(previous, value)
    return previous + value


def merge_metric_families(expositions: Iterable[str]) -> list[Metric]:
    """The Prometheus text expositions of several processes, merged by the rules above (in
    the order the families and samples first appear)."""
    merged: dict[str, Metric] = {}
    values: dict[str, dict[_SampleKey, float]] = {}
    for text in expositions:
        for family in text_string_to_metric_families(text):
            kept = merged.get(family.name)
            if kept is None:
                kept = merged[family.name] = Metric(
                    family.name, family.documentation, family.type, family.unit
                )
                values[family.name] = {}
            samples = values[family.name]
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                previous = samples.get(key)
                samples[key] = (
                    sample.value if previous is None else _combine(kept, previous, sample.value)
                )
    for name, family in merged.items():
        for (sample_name, labels), value in values[name].items():
            family.add_sample(sample_name, dict(labels), value)
    return list(merged.values())


class _Fixed(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


def merge_metrics(expositions: Iterable[str]) -> bytes:
    """The merged exposition, in the text format one process would serve."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(merge_metric_families(expositions)))
    return generate_latest(registry)


def merge_health(parts: Sequence[RuntimeHealth]) -> RuntimeHealth:
    """The pod's ``/status`` from its processes' (the operator reads it per pod and adds
    pods up, ``sluice_operator.pod_health``): partitions, rates and counts added up, the
    blocked partitions listed together, the oldest record the oldest of all, the dead-letter
    queue unavailable since the earliest process saw it so. Rebalances are the largest
    count: one rebalance of the group reaches every process of the pod."""
    if not parts:
        return RuntimeHealth()
    answers = [part.sink for part in parts]
    unavailable = [part for part in parts if part.dead_letter_unavailable_since is not None]
    first_unavailable = min(
        unavailable, key=lambda part: part.dead_letter_unavailable_since or "", default=None
    )
    ages = [
        part.oldest_undelivered_seconds
        for part in parts
        if part.oldest_undelivered_seconds is not None
    ]
    return RuntimeHealth(
        window_seconds=max(part.window_seconds for part in parts),
        partitions=sum(part.partitions for part in parts),
        blocked=sorted(
            (blocked for part in parts for blocked in part.blocked),
            key=lambda b: (b.topic, b.partition),
        ),
        sink=SinkAnswers(
            requests=sum(a.requests for a in answers),
            failed=sum(a.failed for a in answers),
            throttled=sum(a.throttled for a in answers),
            rejected=sum(a.rejected for a in answers),
            last_error=next((a.last_error for a in answers if a.last_error), None),
        ),
        dead_letter_unavailable_since=(
            first_unavailable.dead_letter_unavailable_since if first_unavailable else None
        ),
        dead_letter_error=first_unavailable.dead_letter_error if first_unavailable else None,
        delivered_per_second=round(sum(part.delivered_per_second for part in parts), 2),
        dead_lettered=sum(part.dead_lettered for part in parts),
        oldest_undelivered_seconds=max(ages) if ages else None,
        rebalances=max(part.rebalances for part in parts),
    )
