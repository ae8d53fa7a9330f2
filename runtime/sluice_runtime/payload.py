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


def _time(timestamp_ms: int) -> str:
    return datetime.fromtimestamp(timestamp_ms / 1000, UTC).isoformat(timespec="milliseconds")


def _header(item: Item, name: str) -> str | None:
    for key, raw in item.record.headers:
        if key == name and raw is not None:
            try:
                return raw.decode("ascii")
            except UnicodeDecodeError:
                return None
    return None


def _attributes(item: Item, source: str) -> dict[str, Any]:
    record = item.record
    attributes: dict[str, Any] = {
        "specversion": "1.0",
        "id": item.event_id,
        "source": source,
        "type": EVENT_TYPE,
        "subject": f"partition:{record.partition}#{record.offset}",
        "time": _time(record.timestamp),
        "datacontenttype": "application/json",
        "kafkatopic": record.topic,
        "kafkapartition": str(record.partition),
        "kafkaoffset": str(record.offset),
    }
    if record.key is not None:
        attributes["partitionkey"] = record.key.decode("utf-8", "replace")
    traceparent = _header(item, "traceparent")
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
