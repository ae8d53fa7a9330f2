"""The record envelope that filters and transforms see (docs/concepts.md, "The record envelope").

``value`` and ``key`` are parsed JSON when they are valid JSON, else UTF-8 text, else base64
(flagged in ``valueEncoding`` / ``keyEncoding``). Decoding never raises for a record's bytes:
whatever Kafka holds can be represented, so a strange record is delivered, not lost.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Sequence

# The C implementation behind json.dumps for strings: ASCII-only output, \u escapes.
from json.encoder import encode_basestring_ascii as _json_string
from typing import Any

import orjson
import simdjson

from sluice_runtime.exactjson import exact_reparse, may_hold_wide_integer
from sluice_runtime.records import ENVELOPE as ENVELOPE  # defined there, used from here
from sluice_runtime.records import Record


def decode_bytes(raw: bytes | None) -> tuple[Any, str]:
    """(decoded value, encoding) where encoding is json, text, base64 or null."""
    if raw is None:
        return None, "null"
    if raw:
        first = raw[0]
        # Only try JSON where it can succeed: objects, arrays, strings, numbers, literals.
        if first in _JSON_START:
            try:
                value = orjson.loads(raw)
            except orjson.JSONDecodeError:
                pass
            else:
                # orjson reads integers beyond 64 bits as floats: those records are parsed
                # again, exactly (rare, and spotted for a fraction of the parse).
                if may_hold_wide_integer(raw):
                    value = exact_reparse(raw)
                return value, "json"
    try:
        return raw.decode("utf-8"), "text"
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode("ascii"), "base64"


_JSON_START = frozenset(b'{["-0123456789tfn \t\r\n')


def decode_headers(headers: Sequence[tuple[str, bytes | None]]) -> dict[str, str]:
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


def _encoded_bytes(raw: bytes | None) -> tuple[bytes, str]:
    """(JSON text, encoding): what ``orjson.dumps(decode_bytes(raw)[0])`` would write,
    reusing the record's own bytes when they are JSON already (no parse-and-reserialise)."""
    if raw is None:
        return b"null", "null"
    if raw and raw[0] in _JSON_START and is_json(raw):
        return raw, "json"  # embedded as is
    # json's C string encoder rather than orjson.dumps: each orjson.dumps call allocates a
    # kilobyte buffer and shrinks it, which costs ~2 µs per call once thousands of results
    # are alive at once (they are: events wait in batches), against ~0.1 µs here.
    try:
        return json_string(raw.decode("utf-8")), "text"
    except UnicodeDecodeError:
        return b'"%b"' % base64.b64encode(raw), "base64"


_parsers = threading.local()  # a simdjson parser must not be shared between threads
_SIMDJSON_MAX = 1 << 20  # larger documents go to orjson, so each parser's buffer stays small


def is_json(raw: bytes) -> bool:
    """Whether ``raw`` is one JSON document.

    simdjson validates without building Python objects, about a fifth of what
    ``orjson.loads`` costs here (that was a sixth of the runtime's CPU per record); what it
    refuses is asked again of orjson, which also accepts integers beyond 64 bits.
    """
    if len(raw) <= _SIMDJSON_MAX:
        parser = getattr(_parsers, "parser", None)
        if parser is None:
            parser = _parsers.parser = simdjson.Parser()
        try:
            parser.parse(raw)  # the parsed document is dropped at once, freeing the parser
            return True
        except (ValueError, RuntimeError):
            pass
    try:
        orjson.loads(raw)
        return True
    except orjson.JSONDecodeError:
        return False


def thread_parse() -> Callable[[bytes], Any]:
    """This thread's simdjson ``parse``, for loops that check many values (``is_json``
    for each, written out); what it refuses must be asked of ``is_json`` again."""
    parser = getattr(_parsers, "parser", None)
    if parser is None:
        parser = _parsers.parser = simdjson.Parser()
    parse: Callable[[bytes], Any] = parser.parse
    return parse


JSON_START = _JSON_START  # first bytes of a JSON document, spaces included
SIMDJSON_MAX = _SIMDJSON_MAX


def value_json(raw: bytes | None) -> bytes:
    """A record's value (or key) as JSON: as is when it is JSON, else a JSON string (base64
    when it is not UTF-8), as the envelope writes it."""
    return _encoded_bytes(raw)[0]


def encoded_json(raw: bytes | None) -> tuple[bytes, str]:
    """A record's value or key as the envelope writes it, and its encoding (json, text,
    base64 or null)."""
    return _encoded_bytes(raw)


def encoded_headers(headers: Sequence[tuple[str, bytes | None]]) -> bytes:
    """A record's headers as the envelope writes them (an object of strings)."""
    return orjson.dumps(decode_headers(headers))


def json_string(text: str) -> bytes:
    """``text`` as a JSON string literal, quotes included."""
    return _json_string(text).encode("ascii")


def envelope_parts(record: Record) -> tuple[bytes, bytes, bytes, bytes, str]:
    """The JSON pieces of a record's envelope that depend on its bytes:
    (key, headers, value, encoding flags, key encoding)."""
    value, value_encoding = _encoded_bytes(record.value)
    key, key_encoding = _encoded_bytes(record.key) if record.key is not None else _NULL
    headers = encoded_headers(record.headers) if record.headers else b"{}"
    return key, headers, value, ENCODING_FLAGS[value_encoding, key_encoding], key_encoding


_NULL = (b"null", "null")
_ENCODINGS = ("json", "text", "base64", "null")
_FLAGGED = ("text", "base64")  # only these are flagged, so the common case stays small
ENCODING_FLAGS = {  # (value's encoding, key's) -> the envelope's flag fields
    (value, key): (b',"valueEncoding":"%b"' % value.encode() if value in _FLAGGED else b"")
    + (b',"keyEncoding":"%b"' % key.encode() if key in _FLAGGED else b"")
    for value in _ENCODINGS
    for key in _ENCODINGS
}


def encode_envelope(record: Record) -> bytes:
    """The envelope as JSON, equal to ``orjson.dumps(build_envelope(record))`` once parsed."""
    key, headers, value, flags, _ = envelope_parts(record)
    return (
        b'{"topic":%b,"partition":%d,"offset":%d,"timestamp":%d,"key":%b,"headers":%b,"value":%b%b}'
        % (
            json_string(record.topic),
            record.partition,
            record.offset,
            record.timestamp,
            key,
            headers,
            value,
            flags,
        )
    )


def build_envelope(record: Record) -> dict[str, Any]:
    value, value_encoding = decode_bytes(record.value)
    key, key_encoding = decode_bytes(record.key)
    # Flags only where the raw bytes were not JSON, so the common case stays small.
    return envelope_of(
        record,
        key,
        value,
        key_encoding if key_encoding in ("text", "base64") else None,
        value_encoding if value_encoding in ("text", "base64") else None,
    )


def envelope_of(
    record: Record, key: Any, value: Any, key_flag: str | None, value_flag: str | None
) -> dict[str, Any]:
    """The envelope of a record whose key and value are decoded already (a flag names an
    encoding that is not JSON; None leaves it out)."""
    envelope: dict[str, Any] = {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": record.timestamp,
        "key": key,
        "headers": decode_headers(record.headers) if record.headers else {},
        "value": value,
    }
    if value_flag is not None:
        envelope["valueEncoding"] = value_flag
    if key_flag is not None:
        envelope["keyEncoding"] = key_flag
    return envelope
