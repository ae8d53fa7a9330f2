"""Avro payloads decoded with fastavro, with the writer's schema (the one the record names),
so records written with any version of a schema decode as written.

Values map to JSON as Avro's types suggest (docs/schemas.md): records → objects, arrays,
maps, enums → symbol strings, unions → the branch's value, bytes and fixed → base64; the
logical types to strings that keep them exact: decimal → "12.30", uuid → text, date →
"2026-12-01", time → "23:59:58.250", timestamps → "2026-12-01T23:59:58.250Z" (local
timestamps without the "Z"). A schema that has none of these types is read with no walk
over its values at all.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from uuid import UUID

import fastavro
import orjson

from sluice_runtime.schemas.registry import Decoder, RegistrySchema
from sluice_runtime.schemas.wire import DESERIALIZATION_ERROR, DecodeError

Convert = Callable[[Any], Any]


def compile_avro(schema: RegistrySchema, schema_id: int) -> Decoder:
    """The decoder of payloads written with ``schema``."""
    if schema.schema_type != "AVRO":
        raise DecodeError(
            DESERIALIZATION_ERROR,
            f"schema {schema_id} is {schema.schema_type}, not AVRO",
        )
    named: dict[str, Any] = {}
    try:
        for reference in _references_first(schema):
            fastavro.parse_schema(orjson.loads(reference.text), named_schemas=named)
        parsed = fastavro.parse_schema(orjson.loads(schema.text), named_schemas=named)
    except Exception as error:
        raise DecodeError(
            DESERIALIZATION_ERROR, f"schema {schema_id} is not a valid Avro schema: {error}"
        ) from None
    convert = _converter(parsed, {})
    reader = fastavro.schemaless_reader

    def decode(payload: bytes) -> Any:
        stream = io.BytesIO(payload)
        try:
            value = reader(stream, parsed, None)
        except Exception as error:
            raise DecodeError(
                DESERIALIZATION_ERROR,
                f"the payload does not decode with Avro schema {schema_id}: "
                f"{type(error).__name__}: {error}",
            ) from None
        if stream.tell() != len(payload):
            raise DecodeError(
                DESERIALIZATION_ERROR,
                f"{len(payload) - stream.tell()} bytes left after decoding with Avro "
                f"schema {schema_id}",
            )
        return value if convert is None else convert(value)

    return decode


def decode_with_schema_text(schema_text: str, payload: bytes) -> Any:
    """Decode one Avro payload with a schema given as text (``sluice test-transform``)."""
    return compile_avro(RegistrySchema("AVRO", schema_text), 0)(payload)


def _references_first(schema: RegistrySchema) -> list[RegistrySchema]:
    ordered: list[RegistrySchema] = []
    for reference in schema.references.values():
        ordered += _references_first(reference)
        ordered.append(reference)
    return ordered


# -- mapping to JSON -------------------------------------------------------------------------


def _base64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def _decimal(value: Decimal) -> str:
    return str(value)


def _uuid(value: Any) -> str:
    return str(value) if isinstance(value, UUID) else value


def _timestamp(value: dt.datetime) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value.isoformat(timespec=_precision(value)) + "Z"
    return value.isoformat(timespec=_precision(value))


def _precision(value: dt.datetime | dt.time) -> str:
    return "milliseconds" if value.microsecond % 1000 == 0 else "microseconds"


def _date(value: dt.date) -> str:
    return value.isoformat()


def _time(value: dt.time) -> str:
    return value.isoformat(timespec=_precision(value))


_LOGICAL: dict[str, Convert] = {
    "decimal": _decimal,
    "uuid": _uuid,
    "date": _date,
    "time-millis": _time,
    "time-micros": _time,
    "timestamp-millis": _timestamp,
    "timestamp-micros": _timestamp,
    "timestamp-nanos": _timestamp,
    "local-timestamp-millis": _timestamp,
    "local-timestamp-micros": _timestamp,
    "local-timestamp-nanos": _timestamp,
}


def _converter(schema: Any, seen: dict[str, Convert | None]) -> Convert | None:
    """A function mapping a decoded value of ``schema`` to JSON types, or None when the
    value is JSON already (then nothing walks it)."""
    if isinstance(schema, str):
        if schema in ("bytes",):
            return _base64
        named = seen.get(schema, _UNSEEN)
        return None if named is _UNSEEN else _late(seen, schema)
    if isinstance(schema, list):
        return _union([_converter(branch, seen) for branch in schema])
    kind = schema.get("type")
    logical = schema.get("logicalType")
    if logical in _LOGICAL:
        return _LOGICAL[logical]
    if kind == "record" or kind == "error":
        name = schema.get("name", "")
        seen[name] = None  # recursive references see "no conversion" while it is built
        fields = [(f["name"], _converter(f["type"], seen)) for f in schema.get("fields", [])]
        converted = [(name_, convert) for name_, convert in fields if convert is not None]
        result = None if not converted else _record(converted)
        seen[name] = result
        return result
    if kind == "array":
        item = _converter(schema["items"], seen)
        return None if item is None else (lambda values: [item(v) for v in values])
    if kind == "map":
        entry = _converter(schema["values"], seen)
        return None if entry is None else (lambda values: {k: entry(v) for k, v in values.items()})
    if kind in ("bytes", "fixed"):
        return _base64
    if isinstance(kind, (dict, list)):
        return _converter(kind, seen)
    if isinstance(kind, str) and kind not in _PRIMITIVES:
        return _converter(kind, seen)
    return None


_PRIMITIVES = frozenset(
    ("null", "boolean", "int", "long", "float", "double", "string", "enum", "bytes", "fixed")
)
_UNSEEN: Any = object()


def _late(seen: dict[str, Convert | None], name: str) -> Convert | None:
    """A named type used again (or recursively): its converter, looked up when called."""
    if seen.get(name) is None:
        return None
    return lambda value: (seen[name] or _identity)(value)


def _identity(value: Any) -> Any:
    return value


def _record(fields: list[tuple[str, Convert]]) -> Convert:
    def convert(value: dict[str, Any]) -> dict[str, Any]:
        for name, field_convert in fields:
            item = value.get(name)
            if item is not None:
                value[name] = field_convert(item)
        return value

    return convert


def _union(branches: list[Convert | None]) -> Convert | None:
    """A union's value has the type of one of its branches, which only the value tells: it
    is mapped by its Python type, walking into objects and arrays."""
    return _walk if any(convert is not None for convert in branches) else None


def _walk(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _walk(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_walk(item) for item in value]
    if isinstance(value, bytes):
        return _base64(value)
    if isinstance(value, Decimal):
        return _decimal(value)
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, dt.datetime):
        return _timestamp(value)
    if isinstance(value, dt.date):
        return _date(value)
    if isinstance(value, dt.time):
        return _time(value)
    return value
