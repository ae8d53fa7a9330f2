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


FAN_OUT_UDF = """
def handle_message(event, context):
    return [{"i": event["value"]["i"], "part": 1}, {"i": event["value"]["i"], "part": 2}]
"""


def test_a_record_whose_events_fail_in_two_batches_is_dead_lettered_once(
    kafka_bootstrap: str, make_topic: Callable[..., str]
) -> None:
    """A UDF fans each record out to two events, each its own batch, and the function
    refuses the poison record's: the record goes to the dead-letter queue once, its second
    event is not sent after it failed, and the memory bound counts it out once."""
    topic, dlq = make_topic(), make_topic(prefix="dlq")
    produce(kafka_bootstrap, topic, [(b"k", f'{{"i": {i}}}') for i in range(4)])

    sent: list[tuple[int, int]] = []  # every event the function was asked to take

    def refuse_record_1(events: list[Any]) -> tuple[int, dict[str, str], bytes] | None:
        sent.extend((event["data"]["i"], event["data"]["part"]) for event in events)
        return (400, {}, b"no") if events[0]["data"]["i"] == 1 else None

    with ThreadedFunctionServer(behaviour=refuse_record_1) as function:
        manifest = connector_manifest(
            "fan-fail",
            kafka_bootstrap,
            topic,
            function.url,
            transform={"udf": {"source": FAN_OUT_UDF}},
            window={"maxMessages": 1, "maxInterval": "0s"},
            delivery={"retry": ONE_RETRY, "deadLetter": {"kafka": {"topic": dlq}}},
        )
        with RuntimeThread(manifest) as runtime:
            group = runtime.connector.consumer_group
            wait_for(
                lambda: committed(kafka_bootstrap, group, topic, 1) == {0: 4},
                60,
                "every record committed",
            )
            registry = runtime.runtime.metrics.registry
            buffered = registry.get_sample_value("sluice_buffered_records")
            dead_lettered = registry.get_sample_value(
                "sluice_dead_lettered_total", {"stage": "deliver"}
            )
    dead = read_all(kafka_bootstrap, dlq, 2, timeout=5)
    assert [message.value() for message in dead] == [b'{"i": 1}']
    assert dead_lettered == 1
    assert buffered == 0
    # Record 1's first event was refused (a 400 is not retried); its second was never
    # sent; the other records' events all arrived once.
    assert sorted(sent) == [(0, 1), (0, 2), (1, 1), (2, 1), (2, 2), (3, 1), (3, 2)]


def test_events_a_partial_failure_names_get_the_retry_budget_once(
    kafka_bootstrap: str, make_topic: Callable[..., str]
) -> None:
    """The function keeps naming two events of a batch of eight in batchItemFailures: each
    is sent maxAttempts times in all, then dead-lettered with that count, and the others
    are delivered once."""
    topic, dlq = make_topic(), make_topic(prefix="dlq")
    produce(kafka_bootstrap, topic, [(b"k", f'{{"i": {i}}}') for i in range(8)])
    poison = {2, 5}
    sent: list[int] = []  # every event the function was asked to take

    def name_the_poison(events: list[Any]) -> tuple[int, dict[str, str], bytes]:
        sent.extend(event["data"]["value"]["i"] for event in events)
        named = [
            {"itemIdentifier": event["id"]}
            for event in events
            if event["data"]["value"]["i"] in poison
        ]
        return 200, {}, orjson.dumps({"batchItemFailures": named})

    with ThreadedFunctionServer(behaviour=name_the_poison) as function:
        manifest = connector_manifest(
            "partial-budget",
            kafka_bootstrap,
            topic,
            function.url,
            window={"maxMessages": 8, "maxInterval": "1s"},
            delivery={
                "retry": {**ONE_RETRY, "maxAttempts": 3},
                "deadLetter": {"kafka": {"topic": dlq}},
            },
        )
        with RuntimeThread(manifest) as runtime:
            dead = read_all(kafka_bootstrap, dlq, 2, timeout=60)
            group = runtime.connector.consumer_group
            wait_for(
                lambda: committed(kafka_bootstrap, group, topic, 1) == {0: 8},
                30,
                "every record committed",
            )
    assert sorted(sent) == [0, 1, 2, 2, 2, 3, 4, 5, 5, 5, 6, 7]
    assert sorted(message.value() for message in dead) == [b'{"i": 2}', b'{"i": 5}']
    assert {dict(message.headers())["sluice.error.attempts"] for message in dead} == {b"3"}
