"""Failing functions, poison records and an unwritable dead-letter queue lose nothing."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer

from testkit.function_server import ThreadedFunctionServer
from tests.support import RuntimeThread, committed, connector_manifest, produce, wait_for

pytestmark = pytest.mark.integration

FAST_RETRY = {
    "policy": "exponential",
    "initialDelay": "10ms",
    "maxDelay": "200ms",
    "maxAttempts": 50,
}


def coordinates(events: list[dict[str, Any]]) -> list[tuple[int, int]]:
    return [(int(e["kafkapartition"]), int(e["kafkaoffset"])) for e in events]


def read_all(bootstrap: str, topic: str, expected: int, timeout: float = 30) -> list[Any]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{time.time()}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    messages: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while len(messages) < expected and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                messages.append(message)
    finally:
        consumer.close()
    return messages


def poison(events: list[Any]) -> bool:
    return any(
        isinstance(e, dict) and e.get("data", {}).get("value", {}).get("poison") for e in events
    )


def test_random_server_errors_are_retried_until_all_delivered_in_order(
    kafka_bootstrap: str, make_topic: Callable[..., str]
) -> None:
    topic = make_topic(partitions=4)
    produce(kafka_bootstrap, topic, ((f"k{i % 40}", f'{{"i": {i}}}') for i in range(10_000)))
    with ThreadedFunctionServer(fail_ratio=0.3) as function:
        manifest = connector_manifest(
            "flaky",
            kafka_bootstrap,
            topic,
            function.url,
            window={"maxMessages": 50, "maxInterval": "20ms"},
            delivery={"retry": FAST_RETRY},
        )
        with RuntimeThread(manifest):
            wait_for(lambda: function.event_count >= 10_000, 120, "every record")
        seen = coordinates(function.events())
    assert len(seen) == 10_000  # a 500 means not accepted, so nothing twice either
    by_partition: dict[int, list[int]] = defaultdict(list)
    for partition, offset in seen:
        by_partition[partition].append(offset)
    assert all(offsets == sorted(offsets) for offsets in by_partition.values())


def test_poison_record_is_dead_lettered_and_the_partition_moves_on(
    kafka_bootstrap: str, make_topic: Callable[..., str]
) -> None:
    topic, dlq = make_topic(), make_topic(prefix="dlq")
    records = [(b"k", f'{{"i": {i}}}') for i in range(100)]
    records[37] = (b"bad-key", '{"i": 37, "poison": true}')
    produce(kafka_bootstrap, topic, records)

    def reject_poison(events: list[Any]) -> tuple[int, dict[str, str], bytes] | None:
        return (400, {}, b'{"error": "cannot parse"}') if poison(events) else None

    with ThreadedFunctionServer(behaviour=reject_poison) as function:
        manifest = connector_manifest(
            "poison",
            kafka_bootstrap,
            topic,
            function.url,
            window={"maxMessages": 100, "maxInterval": "1s"},
            delivery={
                "retry": FAST_RETRY,
                "errorTolerance": "all",
                "deadLetter": {"kafka": {"topic": dlq}},
            },
        )
        with RuntimeThread(manifest) as runtime:
            wait_for(lambda: function.event_count >= 99, 60, "the 99 good records")
            group = runtime.connector.consumer_group
            wait_for(
                lambda: committed(kafka_bootstrap, group, topic, 1) == {0: 100},
                30,
                "the partition committed past the poison record",
            )
        delivered = sorted(offset for _, offset in coordinates(function.events()))
    assert delivered == [o for o in range(100) if o != 37]

    [dead] = read_all(kafka_bootstrap, dlq, 1)
    assert dead.key() == b"bad-key"
    assert dead.value() == b'{"i": 37, "poison": true}'
    headers = {k: v.decode() for k, v in dead.headers()}
    assert headers["sluice.error.stage"] == "deliver"
    assert headers["sluice.error.status"] == "400"
    assert "cannot parse" in headers["sluice.error.reason"]
    assert headers["sluice.error.topic"] == topic
    assert headers["sluice.error.partition"] == "0"
    assert headers["sluice.error.offset"] == "37"
    assert headers["sluice.error.connector"] == "tests/poison"
    assert int(headers["sluice.error.attempts"]) >= 1
    assert headers["sluice.error.time"].startswith("20")


def test_tolerance_none_blocks_only_the_poisoned_partition_until_fixed(
    kafka_bootstrap: str, make_topic: Callable[..., str]
) -> None:
    topic = make_topic(partitions=3)
    for partition in range(3):
        records = [(None, f'{{"p": {partition}, "i": {i}}}') for i in range(200)]
        if partition == 0:
            records[120] = (None, '{"p": 0, "i": 120, "poison": true}')
        produce(kafka_bootstrap, topic, records, partition=partition)
    fixed = {"yes": False}

    def reject_until_fixed(events: list[Any]) -> tuple[int, dict[str, str], bytes] | None:
        return None if fixed["yes"] or not poison(events) else (400, {}, b"bad record")

    with ThreadedFunctionServer(behaviour=reject_until_fixed) as function:
        manifest = connector_manifest(
            "blocked",
            kafka_bootstrap,
            topic,
            function.url,
            window={"maxMessages": 25, "maxInterval": "50ms"},
            delivery={
                "errorTolerance": "none",
                "retry": {**FAST_RETRY, "maxAttempts": 3, "maxDelay": "500ms"},
            },
        )
        with RuntimeThread(manifest) as runtime:
            group = runtime.connector.consumer_group
            wait_for(lambda: function.event_count >= 520, 60, "all but the blocked records")
            wait_for(
                lambda: committed(kafka_bootstrap, group, topic, 3) == {0: 120, 1: 200, 2: 200},
                30,
                "commits up to the poison record only",
            )
            time.sleep(2)
            assert committed(kafka_bootstrap, group, topic, 3)[0] == 120
            assert not any(o >= 120 for p, o in coordinates(function.events()) if p == 0)

            fixed["yes"] = True
            wait_for(lambda: function.event_count >= 600, 30, "the blocked partition to resume")
        after = [o for p, o in coordinates(function.events()) if p == 0]
    assert after == list(range(200))


def test_unwritable_dead_letter_queue_blocks_instead_of_committing(
    kafka_bootstrap: str, make_topic: Callable[..., str]
) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic
    from conftest import unique_name

    topic = make_topic()
    dlq = unique_name("dlq-later")  # does not exist yet: the broker refuses writes to it
    records = [(None, f'{{"i": {i}}}') for i in range(20)]
    records[5] = (None, '{"i": 5, "poison": true}')
    produce(kafka_bootstrap, topic, records)

    def reject(events: list[Any]) -> tuple[int, dict[str, str], bytes] | None:
        return (422, {}, b"no") if poison(events) else None

    with ThreadedFunctionServer(behaviour=reject) as function:
        manifest = connector_manifest(
            "dlq-down",
            kafka_bootstrap,
            topic,
            function.url,
            window={"maxMessages": 20, "maxInterval": "50ms"},
            delivery={"retry": FAST_RETRY, "deadLetter": {"kafka": {"topic": dlq}}},
        )
        with RuntimeThread(manifest) as runtime:
            group = runtime.connector.consumer_group
            wait_for(lambda: function.event_count >= 19, 30, "the good records")
            time.sleep(3)
            assert committed(kafka_bootstrap, group, topic, 1)[0] <= 5

            admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
            admin.create_topics([NewTopic(dlq, 1)])[dlq].result(30)
            wait_for(
                lambda: committed(kafka_bootstrap, group, topic, 1)[0] == 20,
                90,
                "the commit after the dead-letter queue came back",
            )
    [dead] = read_all(kafka_bootstrap, dlq, 1)
    assert dict(dead.headers())["sluice.error.offset"] == b"5"
    AdminClient({"bootstrap.servers": kafka_bootstrap}).delete_topics([dlq])


def test_throttling_slows_requests_and_recovers(
    kafka_bootstrap: str, make_topic: Callable[..., str]
) -> None:
    topic = make_topic(partitions=2)
    produce(kafka_bootstrap, topic, ((None, f'{{"i": {i}}}') for i in range(3_000)))
    throttle = {"on": True, "hits": []}  # type: dict[str, Any]

    def throttled(events: list[Any]) -> tuple[int, dict[str, str], bytes] | None:
        if throttle["on"]:
            throttle["hits"].append(time.monotonic())
            return (429, {"retry-after": "2"}, b"slow down")
        return None

    with ThreadedFunctionServer(behaviour=throttled) as function:
        manifest = connector_manifest(
            "throttle",
            kafka_bootstrap,
            topic,
            function.url,
            window={"maxMessages": 10, "maxInterval": "10ms"},
            delivery={"retry": {**FAST_RETRY, "maxDelay": "5s"}},
        )
        with RuntimeThread(manifest) as runtime:
            time.sleep(6)
            hits = throttle["hits"]
            # Two partitions, one batch each in flight, each waiting Retry-After 2 s.
            assert len(hits) <= 10, f"{len(hits)} requests in 6 s while throttled"
            assert runtime.runtime.metrics.concurrency_limit._value.get() < 64
            assert runtime.runtime.buffer.bytes < 2**20
            throttle["on"] = False
            wait_for(lambda: function.event_count >= 3_000, 60, "recovery")
            assert runtime.runtime.metrics.concurrency_limit._value.get() > 1


def test_redrive_returns_dead_letters_to_the_fixed_function(
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
    tmp_path: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import yaml

    from sluice_runtime.redrive import run_redrive

    topic, dlq = make_topic(), make_topic(prefix="dlq")
    records = [(None, f'{{"i": {i}}}') for i in range(10)]
    records[3] = (None, '{"i": 3, "poison": true}')
    records[7] = (None, '{"i": 7, "poison": true}')
    produce(kafka_bootstrap, topic, records)
    fixed = {"yes": False}

    def reject_until_fixed(events: list[Any]) -> tuple[int, dict[str, str], bytes] | None:
        return None if fixed["yes"] or not poison(events) else (400, {}, b"bad")

    with ThreadedFunctionServer(behaviour=reject_until_fixed) as function:
        manifest = connector_manifest(
            "redrive",
            kafka_bootstrap,
            topic,
            function.url,
            window={"maxMessages": 10, "maxInterval": "50ms"},
            delivery={"retry": FAST_RETRY, "deadLetter": {"kafka": {"topic": dlq}}},
        )
        with RuntimeThread(manifest) as runtime:
            group = runtime.connector.consumer_group
            wait_for(
                lambda: committed(kafka_bootstrap, group, topic, 1) == {0: 10},
                30,
                "the poison records dead-lettered",
            )
        assert function.event_count == 8

        fixed["yes"] = True
        path = tmp_path / "connector.yaml"
        path.write_text(yaml.safe_dump(manifest))
        assert run_redrive(str(path), None, None) == 0
        report = capsys.readouterr().out
        assert '"delivered": 2' in report
        assert '"failedAgain": 0' in report
        redriven = function.events()[8:]
    assert [e["id"] for e in redriven] == [f"{topic}-0-3", f"{topic}-0-7"]
    assert [e["data"]["value"]["i"] for e in redriven] == [3, 7]
    # Nothing was removed: the dead-letter topic still holds both.
    assert len(read_all(kafka_bootstrap, dlq, 2)) == 2


RAISE_ON_POISON_UDF = """
def handle_message(event, context):
    if event["value"].get("poison"):
        raise ValueError("poison")
    return event["value"]
"""


def test_a_stop_while_the_dead_letter_queue_is_down_ends_cleanly(
    kafka_bootstrap: str, make_topic: Callable[..., str], caplog: pytest.LogCaptureFixture
) -> None:
    """A record that failed in its UDF waits on a dead-letter topic that cannot be written
    when the runtime is told to stop: past the grace period the runtime abandons the wait
    and stops without an error (exit 0), committing nothing past the record.
    (test_lane_abort.py pins the order of events inside the lane.)"""
    from conftest import unique_name

    topic = make_topic()
    dlq = unique_name("dlq-never")  # never created: the broker refuses writes to it
    records = [(None, f'{{"i": {i}}}') for i in range(20)]
    records[5] = (None, '{"i": 5, "poison": true}')
    produce(kafka_bootstrap, topic, records)
    with ThreadedFunctionServer() as function:
        manifest = connector_manifest(
            "dlq-stop",
            kafka_bootstrap,
            topic,
            function.url,
            transform={"udf": {"source": RAISE_ON_POISON_UDF}},
            window={"maxMessages": 20, "maxInterval": "50ms"},
            delivery={"retry": FAST_RETRY, "deadLetter": {"kafka": {"topic": dlq}}},
        )
        runtime = RuntimeThread(manifest, grace=1.0).start()
        group = runtime.connector.consumer_group
        wait_for(lambda: "Could not write record" in caplog.text, 60, "a failed dead-letter write")
        runtime.stop()  # raises what the runtime ended with
    assert committed(kafka_bootstrap, group, topic, 1)[0] <= 5


def test_tolerance_none_holds_at_the_poison_event_a_partial_failure_names(
    kafka_bootstrap: str, make_topic: Callable[..., str]
) -> None:
    """The function names two events of a batch; it accepts the first a while later and
    never the second: the partition goes through the first and waits at the second, not
    at both together (the first would be sent again and again, never acknowledged)."""
    topic = make_topic()
    produce(kafka_bootstrap, topic, [(None, f'{{"i": {i}}}') for i in range(4)])
    sends: Counter[int] = Counter()  # offset -> times the function was sent it

    def name_some(events: list[Any]) -> tuple[int, dict[str, str], bytes]:
        named = []
        for event in events:
            offset = int(event["kafkaoffset"])
            sends[offset] += 1
            if offset == 2 or (offset == 1 and sends[1] <= 2):
                named.append({"itemIdentifier": event["id"]})
        return 200, {}, orjson.dumps({"batchItemFailures": named})

    with ThreadedFunctionServer(behaviour=name_some) as function:
        manifest = connector_manifest(
            "hold-partial",
            kafka_bootstrap,
            topic,
            function.url,
            window={"maxMessages": 4, "maxInterval": "1s"},
            delivery={
                "errorTolerance": "none",
                "retry": {**FAST_RETRY, "maxAttempts": 2, "maxDelay": "200ms"},
            },
        )
        with RuntimeThread(manifest) as runtime:
            group = runtime.connector.consumer_group
            wait_for(
                lambda: committed(kafka_bootstrap, group, topic, 1) == {0: 2},
                30,
                "the partition held at offset 2",
            )
            time.sleep(1)
    # Named twice, then accepted: three sends, not one every maxDelay.
    assert sends[1] == 3
    assert committed(kafka_bootstrap, group, topic, 1) == {0: 2}


@pytest.mark.parametrize(
    ("in_worker", "tolerance"),
    [(True, "all"), (False, "all"), (False, "none")],
    ids=["udf-dlq-down", "decode-dlq-down", "decode-tolerance-none"],
)
def test_records_before_one_the_partition_waits_at_are_still_delivered(
    kafka_bootstrap: str, make_topic: Callable[..., str], in_worker: bool, tolerance: str
) -> None:
    """Record 5 fails in processing and the partition waits at it: its dead-letter topic
    cannot be written, or errorTolerance none holds it. Records 0-4, read before it and
    sitting in the open batch, depend on nothing it does: the window's interval still
    sends them (they waited with it before), and nothing past record 5 is committed."""
    from conftest import unique_name

    topic = make_topic()
    dlq = unique_name("dlq-never")  # never created: the broker refuses writes to it
    records: list[tuple[None, str | bytes]] = [(None, f'{{"i": {i}}}') for i in range(20)]
    processing: dict[str, Any] = {}
    if in_worker:
        records[5] = (None, '{"i": 5, "poison": true}')
        processing = {"transform": {"udf": {"source": RAISE_ON_POISON_UDF}}}
    else:  # values read as text (valueFormat string): not UTF-8 fails in stage decode
        records[5] = (None, b"\xff\xfe")
    produce(kafka_bootstrap, topic, records)
    with ThreadedFunctionServer() as function:
        manifest = connector_manifest(
            "dlq-before",
            kafka_bootstrap,
            topic,
            function.url,
            window={"maxMessages": 20, "maxInterval": "200ms"},
            delivery={
                "retry": FAST_RETRY,
                "errorTolerance": tolerance,
                "deadLetter": {"kafka": {"topic": dlq}},
            },
            **processing,
        )
        if not in_worker:
            manifest["spec"]["source"]["kafka"]["valueFormat"] = "string"
        with RuntimeThread(manifest, grace=1.0) as runtime:
            group = runtime.connector.consumer_group
            wait_for(lambda: function.event_count >= 5, 20, "the records before the failed one")
            wait_for(
                lambda: committed(kafka_bootstrap, group, topic, 1)[0] == 5,
                20,
                "the commit of the records before the failed one",
            )
            time.sleep(1)
            assert function.event_count == 5
            assert committed(kafka_bootstrap, group, topic, 1)[0] == 5
