"""Request bodies and headers for each sink format (docs/concepts.md, "Window and payload").

- ``cloudevents-batch``: a JSON array of CloudEvents 1.0 (structured mode),
  ``application/cloudevents-batch+json``;
- ``json-array``: a JSON array of the event data only;
- ``json-values``: a JSON array of the records' values as they arrived (a transform's
  output where there is one);
- ``cloudevents-binary``: one event per request, attributes as ``ce-*`` headers.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any, cast
from urllib.parse import quote

import orjson

from sluice_runtime.envelope import (
    ENCODING_FLAGS,
    ENVELOPE,
    JSON_START,
    SIMDJSON_MAX,
    encode_envelope,
    encoded_headers,
    encoded_json,
    json_string,
    thread_parse,
    value_json,
)
from sluice_runtime.exactjson import dumps as exact_dumps
from sluice_runtime.records import Deliverable, JsonText, Record

EVENT_TYPE = "dev.sluice.kafka.record"
CONTENT_TYPES = {
    "cloudevents-batch": "application/cloudevents-batch+json",
    "json-array": "application/json",
    "json-values": "application/json",
    "cloudevents-binary": "application/json",
}


@dataclass(frozen=True, slots=True)
class Request:
    body: bytes
    content_type: str
    # Header lines beyond content-type, as sent (cloudevents-binary's ce-* attributes),
    # each "name: value\r\n" with every value made of the HTTP binding's safe characters.
    lines: bytes = b""

    @property
    def headers(self) -> dict[str, str]:
        """Every header this request sets, read back from what is sent."""
        headers = {"content-type": self.content_type}
        for line in self.lines.decode("latin-1").split("\r\n"):
            if line:
                name, _, value = line.partition(": ")
                headers[name] = value
        return headers


_time_cache: dict[int, bytes] = {}
_second_cache: dict[int, bytes] = {}


def _time(timestamp_ms: int) -> bytes:
    """A record timestamp as RFC 3339 UTC with milliseconds (as ``datetime.isoformat``).

    Records read together mostly share a millisecond; at a low rate each has its own, and
    a datetime per record cost a third of writing a small request: so the text up to the
    second is kept, and the milliseconds are appended."""
    text = _time_cache.get(timestamp_ms)
    if text is None:
        if len(_time_cache) > 4096:
            _time_cache.clear()
        seconds, millis = divmod(timestamp_ms, 1000)
        prefix = _second_cache.get(seconds)
        if prefix is None:
            if len(_second_cache) > 1024:
                _second_cache.clear()
            moment = datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")
            prefix = _second_cache[seconds] = moment[:19].encode() + b"."
        text = _time_cache[timestamp_ms] = b"%s%03d+00:00" % (prefix, millis)
    return text


# W3C Trace Context: version-traceid-parentid-flags, lower-case hex; later versions may
# append fields after a dash. Anything else in a record's header is not a trace context.
_TRACEPARENT = re.compile(rb"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}(-[\x21-\x7e]*)?")


def _traceparent(headers: Sequence[tuple[str, bytes | None]]) -> str | None:
    for key, raw in headers:
        if key == "traceparent" and raw is not None:
            if len(raw) <= 256 and _TRACEPARENT.fullmatch(raw):
                return raw.decode("ascii")
            return None
    return None


# The CloudEvents HTTP binding (section 3.1.3.2): in a ce-* header, printable ASCII stays
# as it is except space, double quote and percent; everything else is percent-encoded as
# UTF-8. Record keys reach these headers, so this is also what keeps a key holding CR LF
# from writing headers (or a whole request) of its own.
_CE_HEADER_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in ' "%')


def _header_value(value: str) -> str:
    return quote(value, safe=_CE_HEADER_SAFE)


def _attributes(item: Deliverable, source: str) -> dict[str, Any]:
    record = item.record
    partition, offset = record.partition, record.offset
    attributes: dict[str, Any] = {
        "specversion": "1.0",
        "id": item.event_id,
        "source": source,
        "type": EVENT_TYPE,
        "subject": f"partition:{partition}#{offset}",
        "time": _time(record.timestamp).decode(),
        "datacontenttype": "application/json",
        "kafkatopic": record.topic,
        "kafkapartition": str(partition),
        "kafkaoffset": str(offset),
    }
    if record.key is not None:
        attributes["partitionkey"] = record.key.decode("utf-8", "replace")
    if record.headers:
        traceparent = _traceparent(record.headers)
        if traceparent:
            attributes["traceparent"] = traceparent
    return attributes


def _data(item: Deliverable) -> Any:
    data = item.data
    if data is ENVELOPE:
        return orjson.Fragment(encode_envelope(item.record))
    if type(data) is JsonText:
        return orjson.Fragment(data)
    return data


def cloudevent(item: Deliverable, source: str) -> dict[str, Any]:
    event = _attributes(item, source)
    event["data"] = _data(item)
    return event


# cloudevent() with the envelope as data, for pass-through records: the batch is formatted
# by one C call per chunk of events, with no dict, no serialisation and no intermediate
# bytes per record; building events was the largest cost left per record (make bench,
# throughput-batch100). What a partition's events share (topic, partition, source) is
# written into the template once per chunk, so only 11 values vary per event.
# tests/runtime/test_payload.py holds the result equal to cloudevent().
# Placeholders start with a control byte, which escaped JSON text never contains, so what
# replaces one placeholder cannot be mistaken for another.
_T, _P, _S = b"\x01T", b"\x01P", b"\x01S"
_EVENT = (
    b'{"specversion":"1.0","id":"\x01T-\x01P-%d","source":\x01S,"type":"'
    + EVENT_TYPE.encode()
    + b'","subject":"partition:\x01P#%d","time":"%b","datacontenttype":"application/json",'
    b'"kafkatopic":"\x01T","kafkapartition":"\x01P","kafkaoffset":"%d"%b,'
    b'"data":{"topic":"\x01T","partition":\x01P,"offset":%d,"timestamp":%d,'
    b'"key":%b,"headers":%b,"value":%b%b}}'
)
# cloudevent()'s attributes after "specversion": written as that key's value (an orjson
# Fragment), so that orjson writes an event whose data is a decoded value with no dict of
# attributes per event.
_ATTRIBUTES = (
    b'"1.0","id":"\x01T-\x01P-%d%b","source":\x01S,"type":"'
    + EVENT_TYPE.encode()
    + b'","subject":"partition:\x01P#%d","time":"%b","datacontenttype":"application/json",'
    b'"kafkatopic":"\x01T","kafkapartition":"\x01P","kafkaoffset":"%d"%b'
)
# cloudevent() with data that is JSON text already (a UDF's answer); the id's suffix is
# the fan-out index ("-1", ...) or empty.
_EVENT_TEXT = b'{"specversion":' + _ATTRIBUTES + b',"data":%b}'
# The envelope alone, for json-array: the same fields as the CloudEvent's data.
_DATA = (
    b'{"topic":"\x01T","partition":\x01P,"offset":%d,"timestamp":%d,'
    b'"key":%b,"headers":%b,"value":%b%b}'
)
_CHUNK = 64
_strings: dict[str, bytes] = {}  # topics and sources as JSON strings, quotes included


def _cached_json_string(text: str) -> bytes:
    encoded = _strings.get(text)
    if encoded is None:
        if len(_strings) > 1024:
            _strings.clear()
        encoded = _strings[text] = json_string(text)
    return encoded


_templates: dict[tuple[bytes, str, int, str | None], bytes] = {}


def _event_template(
    topic: str, partition: int, source: str | None, template: bytes | None = None
) -> bytes:
    """The CloudEvent's template, or with no source the data's alone (json-array)."""
    if template is None:
        template = _DATA if source is None else _EVENT
    return _filled(template, topic, partition, source)


def _filled(pattern: bytes, topic: str, partition: int, source: str | None) -> bytes:
    """``pattern`` with a partition's topic, partition and source written in, as JSON text
    or, in the binary format's header lines, percent-encoded. Cached: with small batches,
    writing it was a third of a request's body."""
    key = (pattern, topic, partition, source)
    filled = _templates.get(key)
    if filled is None:
        if len(_templates) > 4096:
            _templates.clear()
        if pattern is _BINARY:
            topic_text = _header_value(topic).encode("ascii")
            source_text = _header_value(source or "").encode("ascii")
        else:
            topic_text = _cached_json_string(topic)[1:-1]
            source_text = _cached_json_string(source or "")
        filled = _templates[key] = (  # what is written in is a %-template: % doubled
            pattern.replace(_T, topic_text.replace(b"%", b"%%"))
            .replace(_P, b"%d" % partition)
            .replace(_S, source_text.replace(b"%", b"%%"))
        )
    return filled


_keys: dict[bytes, tuple[bytes, str, bytes]] = {}


def _key_parts(key: bytes) -> tuple[bytes, str, bytes]:
    """A key as the envelope writes it, its encoding, and its CloudEvent ``partitionkey``
    attribute. Cached: a topic's keys repeat (users, devices, orders), and decoding and
    escaping them was a tenth of the body's cost."""
    parts = _keys.get(key)
    if parts is None:
        if len(_keys) > 8192:
            _keys.clear()
        encoded, encoding = encoded_json(key)
        # A UTF-8 key is written the same way in both places.
        text = encoded if encoding == "text" else json_string(key.decode("utf-8", "replace"))
        parts = _keys[key] = (encoded, encoding, b',"partitionkey":' + text)
    return parts


_NO_KEY = (b"null", "null", b"")


def _chunks(items: Sequence[Deliverable]) -> Iterator[tuple[str, int, int, int]]:
    """(topic, partition, start, stop) of runs of up to _CHUNK events of one partition
    (a batch is one partition's): each run is formatted with one template, in one call."""
    start, end = 0, len(items)
    while start < end:
        first = items[start].record
        topic, partition = first.topic, first.partition
        stop = start + 1
        limit = min(end, start + _CHUNK)
        while (
            stop < limit
            and items[stop].record.partition == partition
            and (items[stop].record.topic == topic)
        ):
            stop += 1
        yield topic, partition, start, stop
        start = stop


def _envelope_events(records: Sequence[Record], source: str | None) -> bytes:
    """Pass-through records as CloudEvents of ``source``, or (None) as their envelopes.

    Written out per record, with nothing looked up twice (each record's value checked with
    this thread's parser, its key's parts cached): this runs for every record the runtime
    delivers in these formats."""
    if len(set(map(_topic_of, records))) == 1 and len(set(map(_partition_of, records))) == 1:
        runs: Iterator[Sequence[Record]] = iter((records,))  # a lane's batch: one partition
    else:
        runs = _partition_runs(records)
    parse, starts, limit = thread_parse(), JSON_START, SIMDJSON_MAX
    times, keys, json_flags, flags_of = _time_cache, _keys, _JSON_VALUE_FLAGS, ENCODING_FLAGS
    chunks: list[bytes] = []
    for run in runs:
        first = run[0]
        template = _event_template(first.topic, first.partition, source)
        for begin in range(0, len(run), _CHUNK):
            chunk = run[begin : begin + _CHUNK]
            values: list[Any] = []
            add = values.extend
            for record in chunk:
                raw, raw_key, offset = record.value, record.key, record.offset
                key = _NO_KEY if raw_key is None else (keys.get(raw_key) or _key_parts(raw_key))
                value = None
                if raw and raw[0] in starts and len(raw) <= limit:
                    try:
                        parse(raw)  # one JSON document: embedded as is
                        value, flags = raw, json_flags[key[1]]
                    except (ValueError, RuntimeError):
                        pass  # for value_json to decide (orjson reads integers of any width)
                if value is None:
                    value, encoding = encoded_json(raw)
                    flags = flags_of[encoding, key[1]]
                headers = record.headers
                encoded = encoded_headers(headers) if headers else b"{}"
                if source is None:
                    add((offset, record.timestamp, key[0], encoded, value, flags))
                    continue
                extra = key[2]
                if headers:
                    traceparent = _traceparent(headers)
                    if traceparent:
                        extra += b',"traceparent":' + json_string(traceparent)
                timestamp = record.timestamp
                time = times.get(timestamp) or _time(timestamp)
                add((offset, offset, time, offset, extra, offset, timestamp, key[0], encoded))
                add((value, flags))
            chunks.append(b",".join([template] * len(chunk)) % tuple(values))
    return b"[" + b",".join(chunks) + b"]"


def _partition_runs(records: Sequence[Record]) -> Iterator[Sequence[Record]]:
    """Runs of records of one partition, in order."""
    start = 0
    for index in range(1, len(records) + 1):
        if index == len(records) or (records[index].topic, records[index].partition) != (
            records[start].topic,
            records[start].partition,
        ):
            yield records[start:index]
            start = index


_topic_of, _partition_of = attrgetter("topic"), attrgetter("partition")
_JSON_VALUE_FLAGS = {key: ENCODING_FLAGS["json", key] for key in ("json", "text", "base64", "null")}


def _attribute_values(run: Sequence[Deliverable], with_data: bool) -> list[Any]:
    """What varies per event in _ATTRIBUTES, for each event of ``run`` in turn: offset, id
    suffix (the fan-out index: "-1", ... or empty), offset, time, offset, and the key and
    trace context attributes; then the event's data when ``with_data``. One call for the
    run rather than one per event: this runs for every event that is not a pass-through."""
    times, keys = _time_cache, _keys
    values: list[Any] = []
    add = values.extend
    for item in run:
        record = item.record
        offset, timestamp, raw_key, index = record.offset, record.timestamp, record.key, item.index
        extra = b"" if raw_key is None else (keys.get(raw_key) or _key_parts(raw_key))[2]
        if record.headers:
            traceparent = _traceparent(record.headers)
            if traceparent:
                extra += b',"traceparent":' + json_string(traceparent)
        time = times.get(timestamp) or _time(timestamp)
        suffix = b"-%d" % index if index else b""
        if with_data:
            add((offset, suffix, offset, time, offset, extra, item.data))
        else:
            add((offset, suffix, offset, time, offset, extra))
    return values


def _text_events(items: Sequence[Deliverable], source: str) -> bytes:
    """Events whose data is JSON text already (a UDF's answers) as CloudEvents: formatted
    as the pass-through events are, one C call per chunk."""
    chunks: list[bytes] = []
    for topic, partition, start, stop in _chunks(items):
        values = _attribute_values(items[start:stop], with_data=True)
        template = _event_template(topic, partition, source, _EVENT_TEXT)
        chunks.append(b",".join([template] * (stop - start)) % tuple(values))
    return b"[" + b",".join(chunks) + b"]"


def _decoded_events(items: Sequence[Deliverable], source: str) -> bytes:
    """Events whose data is a value (decoded Avro, a filter's envelope, a template's
    output) as CloudEvents: one orjson call for the batch, each event a dict of two keys.
    The attributes of a chunk are formatted from the partition's template in one call and
    split at a byte that JSON text never holds unescaped; building the attributes' dict
    per event cost about four times as much."""
    events: list[dict[str, Any]] = []
    add = events.append
    fragment = orjson.Fragment
    for topic, partition, start, stop in _chunks(items):
        template = _event_template(topic, partition, source, _ATTRIBUTES)
        run = items[start:stop]
        values = _attribute_values(run, with_data=False)
        filled = (_SEPARATOR.join([template] * len(run)) % tuple(values)).split(_SEPARATOR)
        for item, attributes in zip(run, filled, strict=True):
            add({"specversion": fragment(attributes), "data": _data(item)})
    return exact_dumps(events)


_SEPARATOR = b"\x00"  # JSON text writes this byte escaped (\u0000), never as itself


def build_request(items: Sequence[Deliverable], fmt: str, source: str) -> Request:
    content_type = CONTENT_TYPES[fmt]
    if fmt in ("cloudevents-batch", "json-array"):
        envelope_source = source if fmt == "cloudevents-batch" else None
        if set(map(type, items)) == _RECORDS:  # pass-through: each record its own event
            return Request(
                _envelope_events(cast(list[Record], items), envelope_source), content_type
            )
        if all(item.data is ENVELOPE and item.index == 0 for item in items):
            records = [item.record for item in items]
            return Request(_envelope_events(records, envelope_source), content_type)
    if fmt == "cloudevents-batch":
        if all(type(item.data) is JsonText for item in items):
            return Request(_text_events(items, source), content_type)
        return Request(_decoded_events(items, source), content_type)
    if fmt == "json-array":
        if all(type(item.data) is JsonText for item in items):
            return Request(b"[" + b",".join([i.data for i in items]) + b"]", content_type)
        return Request(exact_dumps([_data(item) for item in items]), content_type)
    if fmt == "json-values":
        return Request(_values(items), content_type)
    if len(items) != 1:
        raise ValueError("cloudevents-binary carries exactly one event per request")
    item = items[0]
    data = item.data
    if data is ENVELOPE:
        body = encode_envelope(item.record)
    else:
        body = data if type(data) is JsonText else exact_dumps(data)
    return Request(body, content_type, _binary_lines(item, source))


# cloudevent()'s attributes as the HTTP binding's ce-* header lines (datacontenttype is
# the content-type header), from a template per partition as for the batch formats: a
# dict of attributes and a percent-encoding call per header were most of a binary
# request's cost. Every value is made of the binding's safe characters: the topic and the
# source are encoded into the template, the key when its line is cached, and the rest is
# digits, the time and fixed text. tests/differential/test_cloudevents.py reads these
# headers back with the CloudEvents SDK.
_BINARY = (
    b"ce-specversion: 1.0\r\nce-id: \x01T-\x01P-%d%b\r\nce-source: \x01S\r\n"
    b"ce-type: " + EVENT_TYPE.encode() + b"\r\nce-subject: partition:\x01P#%d\r\n"
    b"ce-time: %b\r\nce-kafkatopic: \x01T\r\nce-kafkapartition: \x01P\r\n"
    b"ce-kafkaoffset: %d\r\n%b"
)
_binary_keys: dict[bytes, bytes] = {}


def _binary_key_line(key: bytes) -> bytes:
    line = _binary_keys.get(key)
    if line is None:
        if len(_binary_keys) > 8192:
            _binary_keys.clear()
        text = _header_value(key.decode("utf-8", "replace"))
        line = _binary_keys[key] = b"ce-partitionkey: %b\r\n" % text.encode("ascii")
    return line


def _binary_lines(item: Deliverable, source: str) -> bytes:
    record = item.record
    offset, timestamp, index = record.offset, record.timestamp, item.index
    extra = b"" if record.key is None else _binary_key_line(record.key)
    if record.headers:
        traceparent = _traceparent(record.headers)
        if traceparent:
            extra += b"ce-traceparent: %b\r\n" % _header_value(traceparent).encode("ascii")
    return _filled(_BINARY, record.topic, record.partition, source) % (
        offset,
        b"-%d" % index if index else b"",
        offset,
        _time_cache.get(timestamp) or _time(timestamp),
        offset,
        extra,
    )


_RECORDS = {Record}


def _values(items: Sequence[Deliverable]) -> bytes:
    """json-values: each pass-through record's value as the bytes Kafka returned when they
    are one JSON document (checked one by one: joined, two broken values could pass as
    one), else as the envelope writes it (a JSON string, base64 for binary); a
    transform's output as it is. The check is written out: it runs for every record."""
    parse, starts, limit = thread_parse(), JSON_START, SIMDJSON_MAX
    values: list[bytes] = []
    add = values.append
    for item in items:
        if type(item) is Record:
            raw = item.value
        elif item.data is ENVELOPE:
            raw = item.record.value
        else:
            data = item.data
            add(data if type(data) is JsonText else exact_dumps(data))
            continue
        if raw and raw[0] in starts and len(raw) <= limit:
            try:
                parse(raw)  # dropped at once, freeing the parser
            except (ValueError, RuntimeError):
                add(value_json(raw))  # not for simdjson: is_json decides
            else:
                add(raw)
        else:
            add(value_json(raw))
    return b"[" + b",".join(values) + b"]"
