"""Counters, gauges and histograms for the event loop's hot path, exposed through a
prometheus_client registry like any other metric.

prometheus_client's own types take a lock and make several Python calls per update (a
histogram also walks its buckets in Python); the runtime updates eight of them per request,
which was a tenth of the event loop's work at one record per request. These keep plain
numbers instead, and the registry reads them when /metrics is scraped.

They are written from one thread only, the runtime's event loop; the scrape (another thread)
only reads. A number read mid-update is at worst one update behind, as with any scrape.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString


class _Child:
    __slots__ = ("created", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self.created = time.time()


class CounterChild(_Child):
    __slots__ = ()

    def inc(self, amount: float = 1) -> None:
        self.value += amount


class GaugeChild(_Child):
    __slots__ = ()

    def set(self, value: float) -> None:
        self.value = value


ChildT = TypeVar("ChildT", bound=_Child)


class _Labelled(Collector, Generic[ChildT]):
    """One metric family: its unlabelled value, or a child per label values."""

    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str], registry: CollectorRegistry
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._children: dict[tuple[str, ...], ChildT] = {}
        registry.register(self)

    def labels(self, *values: str, **named: str) -> ChildT:
        key = tuple(values) if values else tuple(named[name] for name in self.labelnames)
        if len(key) != len(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}, given {key}")
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._child()
        return child

    def remove(self, *values: str) -> None:
        del self._children[tuple(values)]

    def _child(self) -> ChildT:
        raise NotImplementedError

    def _series(self) -> list[tuple[tuple[str, ...], ChildT]]:
        return list(self._children.items())  # a copy: the loop may add children meanwhile

    def describe(self) -> list[Metric]:
        return []  # the names are not checked for clashes at registration


class LoopCounter(_Labelled[CounterChild]):
    """prometheus_client's Counter (``inc``, ``labels``), for one thread's updates."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        *,
        registry: CollectorRegistry,
    ) -> None:
        super().__init__(name, documentation, labelnames, registry)
        self._own = self._child() if not labelnames else None

    def _child(self) -> CounterChild:
        return CounterChild()

    def inc(self, amount: float = 1) -> None:
        assert self._own is not None, f"{self.name} has labels"
        self._own.value += amount

    @property
    def value(self) -> float:
        assert self._own is not None, f"{self.name} has labels"
        return self._own.value

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        series = [((), self._own)] if self._own is not None else self._series()
        for values, child in series:
            family.add_metric(values, child.value, created=child.created)
        yield family


class LoopGauge(_Labelled[GaugeChild]):
    """prometheus_client's Gauge (``set``, ``labels``, ``remove``) with labels, for one
    thread's updates."""

    def _child(self) -> GaugeChild:
        return GaugeChild()

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in self._series():
            family.add_metric(values, child.value)
        yield family


class LoopHistogram(Collector):
    """prometheus_client's Histogram (``observe``), unlabelled, for one thread's updates."""

    def __init__(
        self,
        name: str,
        documentation: str,
        *,
        buckets: Sequence[float],
        registry: CollectorRegistry,
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.bounds = tuple(float(bound) for bound in buckets)
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.sum = 0.0
        registry.register(self)

    def observe(self, amount: float) -> None:
        # The first bound at or above the value: buckets are "less than or equal".
        self.counts[bisect_left(self.bounds, amount)] += 1
        self.sum += amount

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        counts, total = list(self.counts), self.sum
        cumulative, buckets = 0, []
        for bound, count in zip((*self.bounds, float("inf")), counts, strict=True):
            cumulative += count
            buckets.append((floatToGoString(bound), float(cumulative)))  # type: ignore[no-untyped-call]
        yield HistogramMetricFamily(self.name, self.documentation, buckets=buckets, sum_value=total)
