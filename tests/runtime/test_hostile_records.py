"""Records and function answers built to hurt: each one fails alone, in its stage, and
the partition moves on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest

from testkit.function_server import ThreadedFunctionServer
from tests.runtime.test_failure_handling import read_all
from tests.support import RuntimeThread, committed, connector_manifest, produce, wait_for

pytestmark = pytest.mark.integration

ONE_RETRY = {"policy": "exponential", "initialDelay": "10ms", "maxDelay": "50ms", "maxAttempts": 2}


def nested(depth: int) -> str:
    return '{"kind": "order", "deep": ' + "[" * depth + "1" + "]" * depth + "}"


def test_a_deeply_nested_record_is_dead_lettered_and_the_partition_moves_on(
    kafka_bootstrap: str, make_topic: Callable[..., str]
) -> None:
    """A transform's output is serialised, and JSON encoders stop at some depth: the record
    that cannot be written fails, alone."""
    processing = {"transform": {"jsonPath": "$.value"}}
    topic, dlq = make_topic(), make_topic(prefix="dlq")
    records = [(b"k", f'{{"kind": "order", "i": {i}}}') for i in range(20)]
    records[7] = (b"deep", nested(300))
    produce(kafka_bootstrap, topic, records)
    with ThreadedFunctionServer() as function:
        manifest = connector_manifest(
            "deep",
            kafka_bootstrap,
            topic,
            function.url,
            window={"maxMessages": 10, "maxInterval": "50ms"},
            delivery={"retry": ONE_RETRY, "deadLetter": {"kafka": {"topic": dlq}}},
            **processing,
        )
        with RuntimeThread(manifest) as runtime:
            wait_for(lambda: function.event_count >= 19, 60, "the 19 other records")
            group = runtime.connector.consumer_group
            wait_for(
                lambda: committed(kafka_bootstrap, group, topic, 1) == {0: 20},
                30,
                "the partition committed past the deep record",
            )
            assert not runtime.runtime.stopping.is_set()  # the process goes on
    [dead] = read_all(kafka_bootstrap, dlq, 1)
    assert dead.key() == b"deep"
    assert dead.value() == nested(300).encode()


def test_a_deeply_nested_record_that_passes_a_filter_arrives_as_sent(
    kafka_bootstrap: str, make_topic: Callable[..., str]
) -> None:
    """A filter only chooses: what it lets through is written from the record's bytes, as
    with no filter at all, so nesting no encoder would write again arrives unchanged."""
    topic = make_topic()
    records = [(b"k", f'{{"kind": "order", "i": {i}}}') for i in range(20)]
    records[7] = (b"deep", nested(300))
    records[9] = (b"k", '{"kind": "refund"}')
    produce(kafka_bootstrap, topic, records)
    with ThreadedFunctionServer() as function:
        manifest = connector_manifest(
            "deep-filtered",
            kafka_bootstrap,
            topic,
            function.url,
            window={"maxMessages": 10, "maxInterval": "50ms"},
            filter={"pattern": {"value": {"kind": ["order"]}}},
        )
        manifest["spec"]["sink"]["format"] = "json-values"
        with RuntimeThread(manifest) as runtime:
            group = runtime.connector.consumer_group
            wait_for(
                lambda: committed(kafka_bootstrap, group, topic, 1) == {0: 20},
                60,
                "the partition committed to its end",
            )
        values = function.events()
    assert len(values) == 19  # the refund was filtered out
    assert values[7] == orjson.loads(nested(300))


def test_unknown_batch_item_failure_ids_fail_the_batch_once_with_a_clear_reason(
    kafka_bootstrap: str, make_topic: Callable[..., str]
) -> None:
    topic, dlq = make_topic(), make_topic(prefix="dlq")
    produce(kafka_bootstrap, topic, [(b"k", f'{{"i": {i}}}') for i in range(10)])

    requests = []

    def name_a_stranger(events: list[Any]) -> tuple[int, dict[str, str], bytes]:
        requests.append(len(events))
        return 200, {}, b'{"batchItemFailures": [{"itemIdentifier": "not-a-record"}]}'

    with ThreadedFunctionServer(behaviour=name_a_stranger) as function:
        manifest = connector_manifest(
            "strangers",
            kafka_bootstrap,
            topic,
            function.url,
            window={"maxMessages": 10, "maxInterval": "50ms"},
            delivery={"retry": ONE_RETRY, "deadLetter": {"kafka": {"topic": dlq}}},
        )
        with RuntimeThread(manifest) as runtime:
            dead = read_all(kafka_bootstrap, dlq, 10, timeout=60)
            registry = runtime.runtime.metrics.registry
            assert registry.get_sample_value("sluice_delivered_total") == 0
    # Two attempts of the whole batch, not requests per record.
    assert requests == [10, 10]
    assert len(dead) == 10
    reasons = {dict(m.headers())["sluice.error.reason"].decode() for m in dead}
    assert reasons == {"batchItemFailures names ids that are not in the batch: not-a-record"}


def test_an_oversized_answer_is_refused_and_retried_without_reading_it(
    kafka_bootstrap: str, make_topic: Callable[..., str]
) -> None:
    topic, dlq = make_topic(), make_topic(prefix="dlq")
    produce(kafka_bootstrap, topic, [(b"k", '{"i": 1}')])

    requests = []

    def answer_hugely(events: list[Any]) -> tuple[int, dict[str, str], bytes]:
        requests.append(len(events))
        return 200, {}, b"x" * (8 << 20)

    with ThreadedFunctionServer(behaviour=answer_hugely) as function:
        manifest = connector_manifest(
            "huge",
            kafka_bootstrap,
            topic,
            function.url,
            window={"maxMessages": 1, "maxInterval": "0s"},
            delivery={"retry": ONE_RETRY, "deadLetter": {"kafka": {"topic": dlq}}},
        )
        with RuntimeThread(manifest):
            [dead] = read_all(kafka_bootstrap, dlq, 1, timeout=60)
    assert requests == [1, 1]
    reason = dict(dead.headers())["sluice.error.reason"].decode()
    assert "larger than 1048576 bytes" in reason
