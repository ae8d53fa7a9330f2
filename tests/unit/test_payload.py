"""What the function receives: CloudEvents batches, plain arrays, binary mode."""

from __future__ import annotations

import orjson
import pytest

from sluice_runtime.envelope import Record, build_envelope
from sluice_runtime.payload import build_request
from sluice_runtime.sink import parse_retry_after
from sluice_runtime.window import Item

SOURCE = "/namespaces/ads/connectors/views"


def record(offset: int = 5, key: bytes | None = b"user-17") -> Record:
    return Record(
        "views",
        3,
        offset,
        1732700000000,
        key,
        b'{"a": 1}',
        [("traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")],
    )


def test_cloudevents_batch_attributes() -> None:
    items = [Item(record(5), {"a": 1}), Item(record(5), {"b": 2}, index=1)]
    request = build_request(items, "cloudevents-batch", SOURCE)
    assert request.headers["content-type"] == "application/cloudevents-batch+json"
    events = orjson.loads(request.body)
    first = events[0]
    assert first["specversion"] == "1.0"
    assert first["id"] == "views-3-5"
    assert events[1]["id"] == "views-3-5-1"  # fan-out items keep distinct ids
    assert first["source"] == SOURCE
    assert first["type"] == "dev.sluice.kafka.record"
    assert first["time"] == "2024-11-27T09:33:20.000+00:00"
    assert first["partitionkey"] == "user-17"
    assert first["traceparent"].startswith("00-4bf92f")
    assert (first["kafkatopic"], first["kafkapartition"], first["kafkaoffset"]) == (
        "views",
        "3",
        "5",
    )
    assert first["data"] == {"a": 1}


def test_json_array_carries_only_data() -> None:
    request = build_request([Item(record(), {"a": 1}), Item(record(6), "x")], "json-array", SOURCE)
    assert orjson.loads(request.body) == [{"a": 1}, "x"]


def test_binary_mode_puts_attributes_in_headers() -> None:
    request = build_request([Item(record(), {"a": 1})], "cloudevents-binary", SOURCE)
    assert request.headers["ce-id"] == "views-3-5"
    assert request.headers["ce-specversion"] == "1.0"
    assert orjson.loads(request.body) == {"a": 1}
    with pytest.raises(ValueError, match="one event per request"):
        build_request([Item(record(), 1), Item(record(6), 2)], "cloudevents-binary", SOURCE)


def test_envelope_decodes_json_text_and_binary() -> None:
    env = build_envelope(Record("t", 0, 1, 2, b"k", b'{"x": [1, 2]}', [("h", b"v")]))
    assert env["value"] == {"x": [1, 2]}
    assert env["key"] == "k"
    assert env["headers"] == {"h": "v"}
    assert build_envelope(Record("t", 0, 1, 2, None, b"12abc"))["value"] == "12abc"
    binary = build_envelope(Record("t", 0, 1, 2, None, b"\xff\x00"))
    assert (binary["value"], binary["valueEncoding"]) == ("/wA=", "base64")
    assert build_envelope(Record("t", 0, 1, 2, None, None))["value"] is None


def test_retry_after_forms() -> None:
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
