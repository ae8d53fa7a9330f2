"""Every record reaches the function, in the order each mode promises."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from testkit.function_server import ThreadedFunctionServer
from tests.support import RuntimeThread, committed, connector_manifest, produce, wait_for

pytestmark = pytest.mark.integration

RECORDS = 100_000
PARTITIONS = 8


def coordinates(event: dict[str, Any]) -> tuple[int, int, str]:
    return int(event["kafkapartition"]), int(event["kafkaoffset"]), event["partitionkey"]


@pytest.fixture(scope="module")
def keyed_topic(kafka_bootstrap: str) -> str:
    """One topic with 100 000 keyed records over 8 partitions, shared by the order tests."""
    from confluent_kafka.admin import AdminClient, NewTopic
    from conftest import unique_name

    name = unique_name("keyed")
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(name, num_partitions=PARTITIONS)])[name].result(30)
    produce(kafka_bootstrap, name, ((f"user-{i % 997}", f'{{"i": {i}}}') for i in range(RECORDS)))
    return name


@pytest.mark.parametrize("ordering", ["ordered", "key-ordered", "unordered"])
def test_all_records_delivered_in_promised_order(
    kafka_bootstrap: str, keyed_topic: str, ordering: str
) -> None:
    with ThreadedFunctionServer() as function:
        manifest = connector_manifest(
            f"order-{ordering}",
            kafka_bootstrap,
            keyed_topic,
            function.url,
            window={"maxMessages": 100, "maxInterval": "50ms"},
            delivery={"ordering": ordering, "maxInFlight": 4},
        )
        with RuntimeThread(manifest) as runtime:
            wait_for(
                lambda: function.event_count >= RECORDS,
                180,
                f"{RECORDS} records ({function.event_count} so far)",
            )
            group = runtime.connector.consumer_group
        events = function.events()

    seen = [coordinates(event) for event in events]
    assert len({(p, o) for p, o, _ in seen}) == RECORDS
    assert len(seen) == RECORDS  # no failures, so no duplicates either

    by_partition: dict[int, list[int]] = defaultdict(list)
    by_key: dict[tuple[int, str], list[int]] = defaultdict(list)
    for partition, offset, key in seen:
        by_partition[partition].append(offset)
        by_key[(partition, key)].append(offset)
    if ordering == "ordered":
        for offsets in by_partition.values():
            assert offsets == sorted(offsets)
    if ordering in ("ordered", "key-ordered"):
        for offsets in by_key.values():
            assert offsets == sorted(offsets)
    # Everything was acknowledged, so the group committed every partition's end.
    ends = {p: max(offsets) + 1 for p, offsets in by_partition.items()}
    assert committed(kafka_bootstrap, group, keyed_topic, PARTITIONS) == ends


def test_records_of_any_shape_are_delivered_not_lost(
    kafka_bootstrap: str, make_topic: Callable[..., str]
) -> None:
    topic = make_topic(config={"max.message.bytes": str(8 * 2**20)})
    big = b'{"blob": "' + b"x" * (5 * 2**20) + b'"}'
    with ThreadedFunctionServer() as function:
        manifest = connector_manifest(
            "shapes",
            kafka_bootstrap,
            topic,
            function.url,
            window={"maxMessages": 10, "maxInterval": "100ms"},
        )
        with RuntimeThread(manifest) as runtime:
            runtime.wait_assigned(1)
            produce(
                kafka_bootstrap,
                topic,
                [
                    (None, b"plain text"),
                    (b"\xff\xfe", b"\xff\xfe\x00binary"),
                    (None, b""),
                    ("k", '"a json string"'),
                    (None, b"{not json"),
                ],
            )
            from confluent_kafka import Producer

            producer = Producer(
                {"bootstrap.servers": kafka_bootstrap, "message.max.bytes": 7 * 2**20}
            )
            reports: list[Any] = []
            producer.produce(topic, value=big, on_delivery=lambda err, _m: reports.append(err))
            assert producer.flush(30) == 0
            assert reports == [None]
            wait_for(lambda: function.event_count >= 6, 30, "six records")
        values = [event["data"] for event in function.events()]

    assert values[0]["value"] == "plain text"
    assert values[0]["valueEncoding"] == "text"
    assert values[1]["valueEncoding"] == "base64"
    assert values[1]["keyEncoding"] == "base64"
    assert values[2]["value"] == ""
    assert values[3]["value"] == "a json string"
    assert values[4]["value"] == "{not json"
    assert len(values[5]["value"]["blob"]) == 5 * 2**20


def test_a_new_group_reading_from_latest_commits_where_it_starts(
    kafka_bootstrap: str, make_topic: Callable[..., str]
) -> None:
    """Without a committed offset the operator cannot tell a lag (see KafkaFacts.unstarted):
    a member that has read nothing commits its start, and skips nothing it should read."""
    topic = make_topic(partitions=2)
    produce(kafka_bootstrap, topic, [(None, b'{"before": %d}' % i) for i in range(6)])
    with ThreadedFunctionServer() as function:
        manifest = connector_manifest("starts", kafka_bootstrap, topic, function.url)
        manifest["spec"]["source"]["kafka"]["initialOffset"] = "latest"
        group = manifest["spec"]["source"]["kafka"]["consumerGroup"]
        with RuntimeThread(manifest) as runtime:
            runtime.wait_assigned(2)
            ends = committed(kafka_bootstrap, group, topic, 2)
            assert all(offset < 0 for offset in ends.values())  # nothing committed yet
            wait_for(
                lambda: sum(committed(kafka_bootstrap, group, topic, 2).values()) == 6,
                30,
                "the start of both partitions committed",
            )
            assert function.events() == []  # what came before the group is not read
            produce(kafka_bootstrap, topic, [(None, b'{"after": %d}' % i) for i in range(4)])
            wait_for(lambda: len(function.events()) == 4, 30, "the 4 later records")
            wait_for(
                lambda: sum(committed(kafka_bootstrap, group, topic, 2).values()) == 10,
                30,
                "the later records committed",
            )


def test_binary_mode_requests_read_back_with_the_cloudevents_sdk(
    kafka_bootstrap: str, make_topic: Callable[..., str]
) -> None:
    """What a function receives in cloudevents-binary mode, read with the CloudEvents SDK:
    one event per request, every attribute as meant, hostile keys as one header each."""
    from cloudevents.core.bindings.http import HTTPMessage, from_binary
    from cloudevents.core.formats.json import JSONFormat

    topic = make_topic(partitions=2)
    keys: list[bytes | None] = [b"user-1", b"a\r\nx-evil: 1", "ü €".encode(), None, b'"%']
    records = [(keys[i % len(keys)], f'{{"i": {i}}}') for i in range(40)]
    with ThreadedFunctionServer() as function:
        manifest = connector_manifest(
            "binary",
            kafka_bootstrap,
            topic,
            function.url,
            window={"maxMessages": 1, "maxInterval": "0s"},
        )
        manifest["spec"]["sink"]["format"] = "cloudevents-binary"
        with RuntimeThread(manifest) as runtime:
            runtime.wait_assigned(2)
            produce(kafka_bootstrap, topic, records, partition=0)
            wait_for(lambda: function.event_count >= 40, 60, "40 records")
        received = list(function.requests)

    assert len(received) == 40
    assert not any("x-evil" in request.headers for request in received)
    for offset, request in enumerate(received):
        body = orjson.dumps(request.events[0]["data"])
        event = from_binary(HTTPMessage(request.headers, body), JSONFormat())
        attributes = event.get_attributes()
        key = keys[offset % len(keys)]
        assert attributes["id"] == f"{topic}-0-{offset}"
        assert attributes["kafkaoffset"] == str(offset)
        assert attributes["subject"] == f"partition:0#{offset}"
        assert attributes.get("partitionkey") == (None if key is None else key.decode())
        data = event.get_data()
        assert isinstance(data, dict)
        assert data["value"] == {"i": offset}
