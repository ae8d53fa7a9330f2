"""What the function receives: CloudEvents batches, plain arrays, binary mode."""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluice_runtime import exactjson
from sluice_runtime.config import load_connector
from sluice_runtime.envelope import ENVELOPE, build_envelope, encode_envelope, is_json
from sluice_runtime.payload import build_request, cloudevent
from sluice_runtime.processors import Processor, build_processor
from sluice_runtime.records import Event, JsonText, Record, RecordFailure
from sluice_runtime.sink import parse_retry_after

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


def reference(items: list[Event], fmt: str, source: str) -> bytes:
    """The body as cloudevent() (one dict per event, its attributes' dict included) writes
    it: what every templated path must write too."""
    if fmt == "cloudevents-batch":
        return exactjson.dumps([cloudevent(item, source) for item in items])
    return build_request(items, fmt, source).body


def test_cloudevents_batch_attributes() -> None:
    items = [Event(record(5), {"a": 1}), Event(record(5), {"b": 2}, index=1)]
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


@settings(max_examples=2000, deadline=None)
@given(st.integers(min_value=-62135596800000, max_value=253402300799999))
def test_event_time_is_the_record_timestamp_to_the_millisecond(timestamp: int) -> None:
    # Counted exactly from the epoch: a float of seconds drifts by a millisecond far from it.
    exact = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=timestamp)
    item = Event(Record("views", 3, 5, timestamp, None, b"1", []), {"a": 1})
    for fmt in ("cloudevents-batch", "cloudevents-binary"):
        body = build_request([item], fmt, SOURCE)
        sent = body.headers.get("ce-time") or orjson.loads(body.body)[0]["time"]
        assert sent == exact.isoformat(timespec="milliseconds")


def test_json_array_carries_only_data() -> None:
    request = build_request(
        [Event(record(), {"a": 1}), Event(record(6), "x")], "json-array", SOURCE
    )
    assert orjson.loads(request.body) == [{"a": 1}, "x"]


def test_binary_mode_puts_attributes_in_headers() -> None:
    request = build_request([Event(record(), {"a": 1})], "cloudevents-binary", SOURCE)
    assert request.headers["ce-id"] == "views-3-5"
    assert request.headers["ce-specversion"] == "1.0"
    assert orjson.loads(request.body) == {"a": 1}
    with pytest.raises(ValueError, match="one event per request"):
        build_request([Event(record(), 1), Event(record(6), 2)], "cloudevents-binary", SOURCE)


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


RAW = st.one_of(
    st.none(),
    st.binary(max_size=64),
    st.text(max_size=32).map(str.encode),
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
        max_leaves=10,
    ).map(lambda value: json.dumps(value, indent=1, ensure_ascii=False).encode()),
)


@settings(max_examples=400, deadline=None)
@given(
    key=RAW,
    value=RAW,
    headers=st.lists(st.tuples(st.text(max_size=12), st.none() | st.binary(max_size=8))),
    topic=st.text(min_size=1, max_size=12),
    index=st.integers(min_value=0, max_value=3),
)
def test_the_fast_path_writes_what_the_dict_path_writes(
    key: bytes | None,
    value: bytes | None,
    headers: list[tuple[str, bytes | None]],
    topic: str,
    index: int,
) -> None:
    """Pass-through records skip building dicts; the function must not see a difference,
    whatever the bytes, headers, topic or fan-out index."""
    if headers:
        headers.append(("traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"))
    record = Record(topic, 7, 123456789, 1_700_000_000_123, key, value, headers)
    envelope = build_envelope(record)
    # Parsed exactly: integers beyond 64 bits must come out of both paths unchanged.
    assert exactjson.loads(encode_envelope(record)) == exactjson.loads(exactjson.dumps(envelope))
    for fmt in ("cloudevents-batch", "json-array", "cloudevents-binary"):
        fast = build_request([Event(record, ENVELOPE, index)], fmt, '/s"\\x')
        slow = build_request([Event(record, envelope, index)], fmt, '/s"\\x')
        expected = exactjson.loads(reference([Event(record, envelope, index)], fmt, '/s"\\x'))
        assert exactjson.loads(fast.body) == expected
        assert exactjson.loads(slow.body) == expected
        assert fast.headers == slow.headers
    if index == 0:  # a pass-through record is its own event, as the lane sends it
        for fmt in ("cloudevents-batch", "json-array", "cloudevents-binary"):
            alone = build_request([record], fmt, '/s"\\x')
            expected = exactjson.loads(reference([Event(record, envelope)], fmt, '/s"\\x'))
            assert exactjson.loads(alone.body) == expected
    values = build_request([Event(record, ENVELOPE, index)], "json-values", '/s"\\x')
    assert exactjson.loads(values.body) == [envelope["value"]]
    # A UDF's answer arrives as JSON text (JsonText) and is written as it is.
    text = JsonText(exactjson.dumps(envelope))
    for fmt in ("cloudevents-batch", "json-array", "json-values", "cloudevents-binary"):
        fast = build_request([Event(record, text, index)], fmt, '/s"\\x')
        slow = build_request([Event(record, envelope, index)], fmt, '/s"\\x')
        expected = exactjson.loads(reference([Event(record, envelope, index)], fmt, '/s"\\x'))
        assert exactjson.loads(fast.body) == expected
        assert fast.headers == slow.headers


def test_a_batch_mixing_encoded_and_plain_data() -> None:
    items = [Event(record(5), ENVELOPE), Event(record(6), {"made": "by a UDF"})]
    events = orjson.loads(build_request(items, "cloudevents-batch", SOURCE).body)
    assert events[0]["data"]["value"] == {"a": 1}
    assert events[1]["data"] == {"made": "by a UDF"}


@pytest.mark.parametrize("fmt", ["cloudevents-batch", "json-array"])
@pytest.mark.parametrize("topic", ["views", "@P%d@T", "\x01P%s", 'q"\\u'])
def test_a_long_pass_through_batch_matches_the_dict_path(topic: str, fmt: str) -> None:
    """Batches longer than one formatting chunk and of several partitions, with keys of
    every kind and topic names that look like the template's own syntax."""
    keys = [b"user-1", None, b"42", b'"quoted"', b"\xff\xfe", b"caf\xc3\xa9"]
    records = [
        Record(topic, offset // 70, offset, 1732700000000 + offset, keys[offset % 6], b"[1]")
        for offset in range(150)
    ]
    fast = build_request([Event(r, ENVELOPE) for r in records], fmt, SOURCE)
    decoded = [Event(r, build_envelope(r)) for r in records]
    slow = build_request(decoded, fmt, SOURCE)
    assert orjson.loads(fast.body) == orjson.loads(reference(decoded, fmt, SOURCE))
    assert orjson.loads(slow.body) == orjson.loads(reference(decoded, fmt, SOURCE))
    assert len(orjson.loads(fast.body)) == 150
    # Records as the lane sends them (each its own event): of three partitions, and of one.
    bare = build_request(records, fmt, SOURCE)
    assert orjson.loads(bare.body) == orjson.loads(reference(decoded, fmt, SOURCE))
    one = [r for r in records if r.partition == 1]
    assert len(one) == 70
    alone = build_request(one, fmt, SOURCE)
    expected = reference([Event(r, build_envelope(r)) for r in one], fmt, SOURCE)
    assert orjson.loads(alone.body) == orjson.loads(expected)


@pytest.mark.parametrize("topic", ["views", "@P%d@T", 'q"\\u'])
def test_a_long_batch_of_udf_answers_matches_the_dict_path(topic: str) -> None:
    """Answers of a UDF (JSON text), fanned out, over several chunks and partitions."""
    keys = [b"user-1", None, b"42", b"\xff\xfe"]
    items = [
        Event(
            Record(topic, offset // 70, offset, 1732700000000 + offset, keys[offset % 4], b"1"),
            {"n": offset, "wide": 10**30},
            offset % 3,
        )
        for offset in range(150)
    ]
    texts = [Event(i.record, JsonText(exactjson.dumps(i.data)), i.index) for i in items]
    for fmt in ("cloudevents-batch", "json-array", "json-values"):
        fast = build_request(texts, fmt, SOURCE)
        slow = build_request(items, fmt, SOURCE)
        expected = exactjson.loads(reference(items, fmt, SOURCE))
        assert exactjson.loads(fast.body) == expected
        assert exactjson.loads(slow.body) == expected


def test_json_values_carries_each_value_as_it_arrived() -> None:
    """The function gets the very bytes that were produced when they are JSON (number
    formats, key order, spacing, integers of any width); anything else as the envelope
    writes it; a transform's output as it is."""
    produced = [
        b'{"b": 1.50,  "a": 123456789012345678901234567890}',
        b"plain text",
        b"\xff\x00",
        None,
        b" [1, 2] ",
        b'{"broken": ',
    ]
    items = [Event(record(offset), ENVELOPE) for offset in range(len(produced))]
    for item, value in zip(items, produced, strict=True):
        item.record.value = value
    items.append(Event(record(9), {"made": "by a transform"}))
    request = build_request(items, "json-values", SOURCE)
    assert request.headers["content-type"] == "application/json"
    assert request.body.startswith(b'[{"b": 1.50,  "a": 123456789012345678901234567890},')
    assert b",null, [1, 2] ," in request.body
    assert exactjson.loads(request.body) == [
        {"b": 1.5, "a": 123456789012345678901234567890},
        "plain text",
        "/wA=",
        None,
        [1, 2],
        '{"broken": ',
        {"made": "by a transform"},
    ]


def test_json_values_checks_each_value_not_only_the_joined_array() -> None:
    """Two broken halves joined with a comma look like one valid element; each value is
    checked on its own, so they arrive as two strings, never as a merged element."""
    halves = [b'{"a": "x}', b'{"b": "}', b'{"c": 1},{"d": 2}']
    items = [Event(record(offset), ENVELOPE) for offset in range(3)]
    for item, value in zip(items, halves, strict=True):
        item.record.value = value
    assert orjson.loads(build_request(items, "json-values", SOURCE).body) == [
        half.decode() for half in halves
    ]


@pytest.mark.parametrize(
    "raw",
    [
        b"123456789012345678901234567890",  # beyond 64 bits: simdjson refuses, orjson reads
        b'{"a": 1, "a": 2}',
        b' [1, {"b": null}] ',
        b'"\\ud800"',  # a lone surrogate
        b"1e400",
        b"[1,]",
        b'"\x01"',
        b"[" * 1100 + b"]" * 1100,
        b'{"big": "' + b"x" * (2 << 20) + b'"}',  # past the simdjson size cut-off
        b'{"big": "' + b"x" * (2 << 20),
    ],
)
def test_json_validation_agrees_with_orjson(raw: bytes) -> None:
    try:
        orjson.loads(raw)
        valid = True
    except orjson.JSONDecodeError:
        valid = False
    assert is_json(raw) is valid


TRANSFORMS = [
    None,
    {"jsonPath": "$"},
    {"jsonPath": "$.value"},
    {"jsonPath": "$.key"},
    {"jsonPath": "$.headers.h"},
    {"template": {"template": '{"v": <$.value>, "k": <$.key>}'}},
]


@functools.cache
def processor_of(value_format: str, transform: str | None) -> Processor:
    spec: dict[str, object] = {
        "source": {
            "kafka": {
                "bootstrapServers": ["k:9092"],
                "topics": ["t"],
                "valueFormat": value_format,
                "keyFormat": value_format,
            }
        },
        "filter": {"pattern": {"topic": ["t"]}},
        "sink": {"uri": "http://f/"},
    }
    if transform is not None:
        spec["transform"] = json.loads(transform)
    manifest = {
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "Connector",
        "metadata": {"name": "c", "namespace": "n"},
        "spec": spec,
    }
    return build_processor(load_connector(manifest))


@pytest.mark.parametrize("value_format", ["json", "string", "bytes"])
@pytest.mark.parametrize("transform", [None if t is None else json.dumps(t) for t in TRANSFORMS])
@settings(max_examples=60, deadline=None)
@given(key=RAW, value=RAW, header=st.none() | st.binary(max_size=8))
def test_no_processor_in_the_runtime_gives_bytes_as_event_data(
    value_format: str,
    transform: str | None,
    key: bytes | None,
    value: bytes | None,
    header: bytes | None,
) -> None:
    """Bytes as event data mean JSON text already (a UDF worker's checked answer), written
    into the request unparsed: no filter, template, JSONPath or decoder may ever give
    bytes, whatever the record holds (binary data becomes base64 text). Of the registry
    formats, Avro's two readers are compared in test_avro_reader.py (the generated one
    writes bytes as base64); Protobuf's are mapped by json_format.MessageToDict (base64);
    and a JSONPath that selects bytes all the same fails its record (test_jsonpath.py)."""
    process = processor_of(value_format, transform)
    processed = process(Record("t", 0, 1, 0, key, value, [("h", header)]))
    if isinstance(processed, RecordFailure):  # string: bytes that are not UTF-8
        assert value_format == "string"
        assert processed.stage == "decode"
        return
    assert processed, "the filter matches every record of topic t"
    assert not any(isinstance(data, bytes | bytearray | memoryview) for data in processed)
