"""The record envelope that filters and transforms see (DESIGN.md section 3).

``value`` and ``key`` are parsed JSON when they are valid JSON, else UTF-8 text, else base64
(flagged in ``valueEncoding`` / ``keyEncoding``). Decoding never raises for a record's bytes:
whatever Kafka holds can be represented, so a strange record is delivered, not lost.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import orjson


@dataclass(slots=True)
class Record:
    """One Kafka record as read, plus what the runtime learns about it on the way."""

    topic: str
    partition: int
    offset: int
    timestamp: int  # milliseconds since the epoch
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]] = field(default_factory=list)
    size: int = field(init=False)  # bytes of key and value, used by every buffer bound

    def __post_init__(self) -> None:
        self.size = (len(self.value) if self.value else 0) + (len(self.key) if self.key else 0)

    @property
    def event_id(self) -> str:
        return f"{self.topic}-{self.partition}-{self.offset}"


def decode_bytes(raw: bytes | None) -> tuple[Any, str]:
    """(decoded value, encoding) where encoding is json, text, base64 or null."""
    if raw is None:
        return None, "null"
    if raw:
        first = raw[0]
        # Only try JSON where it can succeed: objects, arrays, strings, numbers, literals.
        if first in _JSON_START:
            try:
                return orjson.loads(raw), "json"
            except orjson.JSONDecodeError:
                pass
    try:
        return raw.decode("utf-8"), "text"
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode("ascii"), "base64"


_JSON_START = frozenset(b'{["-0123456789tfn \t\r\n')


def decode_headers(headers: list[tuple[str, bytes | None]]) -> dict[str, str]:
    decoded: dict[str, str] = {}
    for name, raw in headers:
        if raw is None:
            decoded[name] = ""
            continue
        try:
            decoded[name] = raw.decode("utf-8")
        except UnicodeDecodeError:
            decoded[name] = base64.b64encode(raw).decode("ascii")
    return decoded


def build_envelope(record: Record) -> dict[str, Any]:
    value, value_encoding = decode_bytes(record.value)
    key, key_encoding = decode_bytes(record.key)
    envelope: dict[str, Any] = {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": record.timestamp,
        "key": key,
        "headers": decode_headers(record.headers) if record.headers else {},
        "value": value,
    }
    # Flags only where the raw bytes were not JSON, so the common case stays small.
    if value_encoding in ("text", "base64"):
        envelope["valueEncoding"] = value_encoding
    if key_encoding in ("text", "base64"):
        envelope["keyEncoding"] = key_encoding
    return envelope
