"""Sluice's CloudEvents against the CloudEvents SDK for Python (the reference implementation).

For generated records (any key bytes, headers, values, topics, fan-out indexes), what the
function receives in ``cloudevents-binary`` and ``cloudevents-batch`` is read back with the
SDK: every attribute must come out as Sluice meant it, and in binary mode the SDK must
write the same ``ce-*`` headers from the same event (the HTTP binding's percent-encoding
included). The headers are also checked to be one header each: a record key holding CR LF
must not write headers, or a request, of its own.
"""

from __future__ import annotations

from typing import Any

import pytest
from cloudevents.core.bindings.http import HTTPMessage, from_binary, to_binary
from cloudevents.core.formats.json import JSONFormat
from hypothesis import given, settings
from hypothesis import strategies as st

from sluice_runtime import exactjson
from sluice_runtime.envelope import ENVELOPE, build_envelope
from sluice_runtime.payload import build_request
from sluice_runtime.records import Event, Record

pytestmark = pytest.mark.differential

SOURCE = "/namespaces/ads/connectors/views"
TRACEPARENT = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

KEYS = st.none() | st.binary(max_size=24) | st.text(max_size=24).map(str.encode)
HOSTILE_KEYS = st.sampled_from(
    [b"a\r\nx-evil: 1", b"k\r\n\r\nPOST / HTTP/1.1\r\n", b'"%\x00\x7f', "ü €".encode()]
)
HEADERS = st.lists(
    st.tuples(
        st.sampled_from(["traceparent", "x-id", "tracestate"]),
        st.none() | st.binary(max_size=60) | st.just(TRACEPARENT),
    ),
    max_size=3,
)
VALUES = st.none() | st.binary(max_size=40) | st.sampled_from([b'{"a": [1, 2.5, null]}', b"7"])


def expected_attributes(record: Record, index: int) -> dict[str, Any]:
    """What Sluice means to send for a record (docs/concepts.md, "Window and payload")."""
    attributes = {
        "specversion": "1.0",
        "id": f"{record.topic}-{record.partition}-{record.offset}" + (f"-{index}" if index else ""),
        "source": SOURCE,
        "type": "dev.sluice.kafka.record",
        "subject": f"partition:{record.partition}#{record.offset}",
        "kafkatopic": record.topic,
        "kafkapartition": str(record.partition),
        "kafkaoffset": str(record.offset),
    }
    if record.key is not None:
        attributes["partitionkey"] = record.key.decode("utf-8", "replace")
    for name, raw in record.headers:
        if name == "traceparent" and raw is not None:  # the first one with a value
            if raw == TRACEPARENT:
                attributes["traceparent"] = TRACEPARENT.decode()
            break
    return attributes


def readable(attributes: dict[str, Any]) -> dict[str, Any]:
    """The SDK's attributes without the ones checked apart (time is a datetime there)."""
    return {k: v for k, v in attributes.items() if k not in ("time", "datacontenttype")}


def make_record(topic: str, key: bytes | None, value: bytes | None, headers: Any) -> Record:
    return Record(topic, 7, 1234567, 1_700_000_000_123, key, value, headers)


@settings(max_examples=300, deadline=None)
@given(
    key=KEYS | HOSTILE_KEYS,
    value=VALUES,
    headers=HEADERS,
    topic=st.from_regex(r"[a-zA-Z0-9._-]{1,20}", fullmatch=True),
    index=st.integers(min_value=0, max_value=2),
    envelope_data=st.booleans(),
)
def test_binary_mode_reads_back_with_the_sdk(
    key: bytes | None,
    value: bytes | None,
    headers: list[tuple[str, bytes | None]],
    topic: str,
    index: int,
    envelope_data: bool,
) -> None:
    record = make_record(topic, key, value, headers)
    data = ENVELOPE if envelope_data else {"n": 18446744073709551617, "s": "é"}
    request = build_request([Event(record, data, index)], "cloudevents-binary", SOURCE)

    for name, header_value in request.headers.items():
        assert header_value.isascii(), (name, header_value)
        assert header_value.isprintable(), (name, header_value)

    event = from_binary(HTTPMessage(request.headers, request.body), JSONFormat())
    attributes = event.get_attributes()
    assert readable(attributes) == expected_attributes(record, index)
    assert attributes["time"].isoformat(timespec="milliseconds") == "2023-11-14T22:13:20.123+00:00"
    assert attributes["datacontenttype"] == "application/json"
    want = build_envelope(record) if envelope_data else data
    assert exactjson.loads(request.body) == exactjson.loads(exactjson.dumps(want))

    # The SDK writes the same headers for the same event: the same percent-encoding. (Time
    # is compared above as a moment: both spellings are RFC 3339, "+00:00" and "Z".)
    written = to_binary(event, JSONFormat()).headers
    assert {k: v for k, v in written.items() if k.startswith("ce-") and k != "ce-time"} == {
        k: v for k, v in request.headers.items() if k.startswith("ce-") and k != "ce-time"
    }


@settings(max_examples=200, deadline=None)
@given(
    records=st.lists(st.tuples(KEYS, VALUES, HEADERS), min_size=1, max_size=4),
    envelope_data=st.booleans(),
)
def test_batch_mode_reads_back_with_the_sdk(
    records: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes | None]]]],
    envelope_data: bool,
) -> None:
    built = [make_record("views", k, v, h) for k, v, h in records]
    built = [
        Record(r.topic, r.partition, r.offset + n, r.timestamp, r.key, r.value, r.headers)
        for n, r in enumerate(built)
    ]
    events = [Event(r, ENVELOPE if envelope_data else {"offset": r.offset}) for r in built]
    request = build_request(events, "cloudevents-batch", SOURCE)
    assert request.headers["content-type"] == "application/cloudevents-batch+json"

    sent = exactjson.loads(request.body)
    assert isinstance(sent, list)
    assert len(sent) == len(built)
    for record, element in zip(built, sent, strict=True):
        event = JSONFormat().read(None, exactjson.dumps(element))
        assert readable(event.get_attributes()) == expected_attributes(record, 0)
        want = build_envelope(record) if envelope_data else {"offset": record.offset}
        assert element["data"] == exactjson.loads(exactjson.dumps(want))
