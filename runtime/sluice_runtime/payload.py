"""Request bodies and headers for each sink format (DESIGN.md section 5, "Payload").

- ``cloudevents-batch``: a JSON array of CloudEvents 1.0 (structured mode),
  ``application/cloudevents-batch+json``;
- ``json-array``: a JSON array of the event data only;
- ``cloudevents-binary``: one event per request, attributes as ``ce-*`` headers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from sluice_runtime.window import Item

EVENT_TYPE = "dev.sluice.kafka.record"
CONTENT_TYPES = {
    "cloudevents-batch": "application/cloudevents-batch+json",
    "json-array": "application/json",
    "cloudevents-binary": "application/json",
}


@dataclass(frozen=True, slots=True)
class Request:
    body: bytes
    headers: dict[str, str]


_time_cache: dict[int, str] = {}


def _time(timestamp_ms: int) -> str:
    # Records read together mostly share a millisecond, and formatting dominates otherwise.
    text = _time_cache.get(timestamp_ms)
    if text is None:
        if len(_time_cache) > 4096:
            _time_cache.clear()
        text = datetime.fromtimestamp(timestamp_ms / 1000, UTC).isoformat(timespec="milliseconds")
        _time_cache[timestamp_ms] = text
    return text


def _traceparent(headers: list[tuple[str, bytes | None]]) -> str | None:
    for key, raw in headers:
        if key == "traceparent" and raw is not None:
            try:
                return raw.decode("ascii")
            except UnicodeDecodeError:
                return None
    return None


def _attributes(item: Item, source: str) -> dict[str, Any]:
    record = item.record
    partition, offset = record.partition, record.offset
    attributes: dict[str, Any] = {
        "specversion": "1.0",
        "id": f"{record.topic}-{partition}-{offset}"
        if item.index == 0
        else f"{record.topic}-{partition}-{offset}-{item.index}",
        "source": source,
        "type": EVENT_TYPE,
        "subject": f"partition:{partition}#{offset}",
        "time": _time(record.timestamp),
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


def cloudevent(item: Item, source: str) -> dict[str, Any]:
    event = _attributes(item, source)
    event["data"] = item.data
    return event


def build_request(items: Sequence[Item], fmt: str, source: str) -> Request:
    content_type = {"content-type": CONTENT_TYPES[fmt]}
    if fmt == "cloudevents-batch":
        body = orjson.dumps([cloudevent(item, source) for item in items])
        return Request(body, content_type)
    if fmt == "json-array":
        return Request(orjson.dumps([item.data for item in items]), content_type)
    if len(items) != 1:
        raise ValueError("cloudevents-binary carries exactly one event per request")
    item = items[0]
    headers = {f"ce-{k}": v for k, v in _attributes(item, source).items() if k != "datacontenttype"}
    headers.update(content_type)
    return Request(orjson.dumps(item.data), headers)
