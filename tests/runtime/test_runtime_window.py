"""The window closes batches on count and on interval, as users configure it."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from testkit.function_server import ThreadedFunctionServer
from tests.support import RuntimeThread, connector_manifest, make_producer, produce, wait_for

pytestmark = pytest.mark.integration


def test_seed_demo_two_then_one_after_the_interval(
    kafka_bootstrap: str, make_topic: Callable[..., str]
) -> None:
    topic = make_topic()
    with ThreadedFunctionServer() as function:
        manifest = connector_manifest(
            "demo",
            kafka_bootstrap,
            topic,
            function.url,
            window={"maxMessages": 2, "maxInterval": "10s"},
        )
        with RuntimeThread(manifest) as runtime:
            runtime.wait_assigned(1)
            started = time.time()
            produce(
                kafka_bootstrap, topic, [(None, '{"n": 1}'), (None, '{"n": 2}'), (None, '{"n": 3}')]
            )
            wait_for(lambda: len(function.requests) >= 1, 5, "the first request")
            first = function.requests[0]
            assert first.at - started < 3
            assert [e["data"]["value"]["n"] for e in first.events] == [1, 2]

            wait_for(lambda: len(function.requests) >= 2, 15, "the second request")
            second = function.requests[1]
            assert [e["data"]["value"]["n"] for e in second.events] == [3]
            assert 8.5 <= second.at - first.at <= 12.5
            time.sleep(1)
            assert len(function.requests) == 2


def test_zero_interval_delivers_each_record_at_once(
    kafka_bootstrap: str, make_topic: Callable[..., str]
) -> None:
    topic = make_topic()
    with ThreadedFunctionServer() as function:
        manifest = connector_manifest(
            "realtime",
            kafka_bootstrap,
            topic,
            function.url,
            window={"maxMessages": 100, "maxInterval": "0s"},
        )
        with RuntimeThread(manifest) as runtime:
            runtime.wait_assigned(1)
            delays = []
            producer = make_producer(kafka_bootstrap)
            produce(kafka_bootstrap, topic, [(None, '{"warm": 1}')], producer=producer)
            wait_for(lambda: function.event_count == 1, 5, "the warm-up record")
            for n in range(1, 21):
                sent = time.time()
                produce(kafka_bootstrap, topic, [(None, f'{{"n": {n}}}')], producer=producer)
                # mypy infers no type for a lambda with a default (which binds the loop's n).
                wait_for(lambda n=n: function.event_count > n, 2, f"record {n}")  # type: ignore[misc]
                delays.append(function.requests[-1].at - sent)
                time.sleep(0.05)
    # Within 100 ms of being produced (the producer's own flush is part of it).
    assert sorted(delays)[len(delays) // 2] < 0.1, delays
    assert max(delays) < 0.25, delays
