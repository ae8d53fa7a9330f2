"""The event loop's metrics (loop_metrics) against prometheus_client's own types: the same
updates must expose the same series and values on /metrics (prometheus_client is the
reference; its ``_created`` series of histograms are the one thing left out)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

from sluice_runtime.loop_metrics import LoopCounter, LoopGauge, LoopHistogram
from sluice_runtime.metrics import LATENCY_BUCKETS, SIZE_BUCKETS

VALUES = st.floats(min_value=0, max_value=1e5, allow_nan=False) | st.sampled_from(
    [0.0, 0.001, 0.0025, 1, 2, 100, 10_000, 60, 60.0000001]  # on and beside the bounds
)


def _exposed(registry: CollectorRegistry) -> list[str]:
    return [
        line for line in generate_latest(registry).decode().splitlines() if "_created" not in line
    ]


@settings(max_examples=60, deadline=None)
@given(
    observations=st.lists(VALUES, max_size=40),
    buckets=st.sampled_from([LATENCY_BUCKETS, SIZE_BUCKETS]),
)
def test_a_histogram_exposes_what_prometheus_client_does(
    observations: list[float], buckets: tuple[float, ...]
) -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    loop = LoopHistogram("h_seconds", "A histogram.", buckets=buckets, registry=ours)
    reference = Histogram("h_seconds", "A histogram.", buckets=buckets, registry=theirs)
    for value in observations:
        loop.observe(value)
        reference.observe(value)
    assert _exposed(ours) == _exposed(theirs)


@settings(max_examples=60, deadline=None)
@given(
    updates=st.lists(
        st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(min_value=0, max_value=1000)),
        max_size=30,
    )
)
def test_counters_and_gauges_expose_what_prometheus_client_does(
    updates: list[tuple[str, int]],
) -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    plain = LoopCounter("events", "Events.", registry=ours)
    plain_reference = Counter("events", "Events.", registry=theirs)
    labelled = LoopCounter("reads", "Reads.", ["topic"], registry=ours)
    labelled_reference = Counter("reads", "Reads.", ["topic"], registry=theirs)
    gauge = LoopGauge("offset", "Offsets.", ["topic", "partition"], registry=ours)
    gauge_reference = Gauge("offset", "Offsets.", ["topic", "partition"], registry=theirs)
    for label, amount in updates:
        plain.inc(amount)
        plain_reference.inc(amount)
        labelled.labels(label).inc(amount)
        labelled_reference.labels(label).inc(amount)
        gauge.labels(topic=label, partition="3").set(amount)
        gauge_reference.labels(topic=label, partition="3").set(amount)
    if updates:
        gauge.remove(updates[0][0], "3")
        gauge_reference.remove(updates[0][0], "3")
    assert sorted(_exposed(ours)) == sorted(_exposed(theirs))
    assert plain.value == sum(amount for _, amount in updates)
