"""Avro payloads decoded with the writer's schema (the one the record names), so records
written with any version of a schema decode as written: by the reader generated for the
schema (avro_reader.py), or by fastavro for a schema that reader does not read.

Values map to JSON as Avro's types suggest (docs/schemas.md): records → objects, arrays,
maps, enums → symbol strings, unions → the branch's value, bytes and fixed → base64; the
logical types to strings that keep them exact: decimal → "12.30", uuid → text, date →
"2026-12-01", time → "23:59:58.250", timestamps → "2026-12-01T23:59:58.250Z" (local
timestamps without the "Z"; microseconds and nanoseconds shown when the value has them).

On the fastavro path the schema is prepared once per schema id: fastavro reads dates,
times and timestamps as their plain numbers (no datetime objects) and one converter per
schema writes just the fields that need it as strings.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import io
from collections.abc import Callable
from decimal import Decimal
from typing import Any, cast
from uuid import UUID

import fastavro
import orjson

from sluice_runtime.schemas.avro_reader import (
    Reader,
    build_framed_decoder,
    build_reader,
    finite_or_text,
)
from sluice_runtime.schemas.registry import Decoder, RegistrySchema
from sluice_runtime.schemas.wire import DESERIALIZATION_ERROR, DecodeError

Convert = Callable[[Any], Any]


def compile_avro(schema: RegistrySchema, schema_id: int, *, generated: bool = True) -> Decoder:
    """The decoder of payloads written with ``schema``: the reader generated for it
    (``avro_reader.py``) unless ``generated`` is False or it cannot read the schema, else
    fastavro's."""
    if schema.schema_type != "AVRO":
        raise DecodeError(
            DESERIALIZATION_ERROR,
            f"schema {schema_id} is {schema.schema_type}, not AVRO",
        )
    named: dict[str, Any] = {}
    converters: dict[str, Convert | None] = {}
    try:
        for reference in _references_first(schema):
            read, _ = _prepare(orjson.loads(reference.text), converters, "")
            fastavro.parse_schema(read, named_schemas=named)
        read, convert = _prepare(orjson.loads(schema.text), converters, "")
        parsed = fastavro.parse_schema(read, named_schemas=named)
    except Exception as error:
        raise DecodeError(
            DESERIALIZATION_ERROR, f"schema {schema_id} is not a valid Avro schema: {error}"
        ) from None
    if generated:
        framed = _framed_decoder(schema, schema_id)
        if framed is not None:
            return framed
    fast = _generated_reader(schema) if generated else None
    if fast is not None:
        return _decoder(fast, schema_id)
    reader = fastavro.schemaless_reader
    # fastavro makes a list of whatever count a payload claims: walked first within bounds.
    check = _generated_reader(schema, check_only=True) if generated else None
    bounded = _decoder(check, schema_id) if check is not None else None

    def decode(payload: bytes, start: int = 0, /) -> Any:
        if start:
            payload = payload[start:]
        if bounded is not None:
            bounded(payload)
        stream = io.BytesIO(payload)
        try:
            value = reader(stream, parsed, None)
        except Exception as error:
            raise _undecodable(error, schema_id) from None
        if stream.tell() != len(payload):
            raise _bytes_left(len(payload) - stream.tell(), schema_id)
        return value if convert is None else convert(value)

    return decode


def _generated_reader(schema: RegistrySchema, check_only: bool = False) -> Reader | None:
    written: dict[str, Any] = {}  # the named types as written (logical types kept)
    try:
        for reference in _references_first(schema):
            fastavro.parse_schema(orjson.loads(reference.text), named_schemas=written)
        parsed = fastavro.parse_schema(orjson.loads(schema.text), named_schemas=written)
        return build_reader(parsed, written, _RAW_LOGICAL, check_only=check_only)
    except Exception:  # a schema fastavro reads once prepared, it keeps reading
        return None


def _framed_decoder(schema: RegistrySchema, schema_id: int) -> Decoder | None:
    written: dict[str, Any] = {}  # the named types as written (logical types kept)
    try:
        for reference in _references_first(schema):
            fastavro.parse_schema(orjson.loads(reference.text), named_schemas=written)
        parsed = fastavro.parse_schema(orjson.loads(schema.text), named_schemas=written)
        decode = build_framed_decoder(
            parsed,
            written,
            _RAW_LOGICAL,
            lambda error: _undecodable(error, schema_id),
            lambda left: _bytes_left(left, schema_id),
        )
    except Exception:  # a schema fastavro reads once prepared, it keeps reading
        return None
    return cast(Decoder, decode) if decode is not None else None


def _decoder(read: Reader, schema_id: int) -> Decoder:
    def decode(payload: bytes, start: int = 0, /) -> Any:
        if start:
            payload = payload[start:]
        try:
            value, end = read(payload, 0)
        except Exception as error:
            raise _undecodable(error, schema_id) from None
        if end != len(payload):
            raise _bytes_left(len(payload) - end, schema_id)
        return value

    return decode


def _bytes_left(left: int, schema_id: int) -> DecodeError:
    return DecodeError(
        DESERIALIZATION_ERROR, f"{left} bytes left after decoding with Avro schema {schema_id}"
    )


def _undecodable(error: Exception, schema_id: int) -> DecodeError:
    return DecodeError(
        DESERIALIZATION_ERROR,
        f"the payload does not decode with Avro schema {schema_id}: "
        f"{type(error).__name__}: {error}",
    )


def decode_with_schema_text(schema_text: str, payload: bytes) -> Any:
    """Decode one Avro payload with a schema given as text."""
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


_EPOCH = dt.datetime(1970, 1, 1)
_seconds: dict[int, str] = {}  # records read together mostly share their second


def _second(seconds: int) -> str:
    text = _seconds.get(seconds)
    if text is None:
        if len(_seconds) > 4096:
            _seconds.clear()
        text = _seconds[seconds] = (_EPOCH + dt.timedelta(seconds=seconds)).isoformat()
    return text


# A table: formatting with a nested format spec per value was slower.
_MILLIS: tuple[str, ...] = tuple(f".{units:03d}" for units in range(1000))


def _fraction(units: int, digits: int) -> str:
    """Milliseconds when the value has no finer part, else every digit it has."""
    if digits == 3:
        return _MILLIS[units]
    finer: int = 10 ** (digits - 3)
    if units % finer == 0:
        return _MILLIS[units // finer]
    return f".{units:0{digits}d}"


def _timestamp(digits: int, zone: str) -> Convert:
    per_second = 10**digits
    # Records read together often share the value itself (at 100,000 records/s a
    # millisecond holds a hundred): a look-up is a tenth of the formatting.
    texts: dict[int, Any] = {}

    def convert(value: int) -> Any:
        text = texts.get(value)
        if text is not None:
            return text
        seconds, units = divmod(value, per_second)
        try:
            text = _second(seconds) + _fraction(units, digits) + zone
        except (OverflowError, ValueError):  # beyond year 9999: the number, as written
            return value
        if len(texts) >= 4096:
            texts.clear()
        texts[value] = text
        return text

    return convert


def _date(value: int) -> Any:
    try:
        return (_EPOCH + dt.timedelta(days=value)).date().isoformat()
    except (OverflowError, ValueError):
        return value


def _time(digits: int) -> Convert:
    per_second = 10**digits

    def convert(value: int) -> Any:
        seconds, units = divmod(value, per_second)
        hours, rest = divmod(seconds, 3600)
        return f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}" + _fraction(units, digits)

    return convert


# Logical types read as their underlying number (or string) and converted here.
_RAW_LOGICAL: dict[str, tuple[frozenset[str], Convert | None]] = {
    "timestamp-millis": (frozenset({"long"}), _timestamp(3, "Z")),
    "timestamp-micros": (frozenset({"long"}), _timestamp(6, "Z")),
    "timestamp-nanos": (frozenset({"long"}), _timestamp(9, "Z")),
    "local-timestamp-millis": (frozenset({"long"}), _timestamp(3, "")),
    "local-timestamp-micros": (frozenset({"long"}), _timestamp(6, "")),
    "local-timestamp-nanos": (frozenset({"long"}), _timestamp(9, "")),
    "date": (frozenset({"int"}), _date),
    "time-millis": (frozenset({"int"}), _time(3)),
    "time-micros": (frozenset({"long"}), _time(6)),
    "uuid": (frozenset({"string"}), None),  # the text is the value
}


def _prepare(
    schema: Any, named: dict[str, Convert | None], namespace: str
) -> tuple[Any, Convert | None]:
    """(the schema as fastavro should read it, a function mapping what it reads to JSON
    types or None when it is JSON already)."""
    if isinstance(schema, str):
        if schema == "bytes":
            return schema, _base64
        if schema in ("float", "double"):
            return schema, finite_or_text
        full = schema if "." in schema or not namespace else f"{namespace}.{schema}"
        for name in (full, schema):
            if name in named:
                return schema, _named(named, name)
        return schema, None
    if isinstance(schema, list):
        return _prepare_union(schema, named, namespace)
    if not isinstance(schema, dict):
        return schema, None
    kind = schema.get("type")
    logical = schema.get("logicalType")
    if logical in _RAW_LOGICAL and kind in _RAW_LOGICAL[logical][0]:
        plain = {key: value for key, value in schema.items() if key != "logicalType"}
        return plain, _RAW_LOGICAL[logical][1]
    if logical == "decimal" and kind in ("bytes", "fixed"):
        if kind == "fixed":  # named: a later use by name converts the same way
            named[_full_name(schema, namespace)[0]] = _decimal
        return schema, _decimal
    if kind in ("record", "error"):
        full, space = _full_name(schema, namespace)
        named[full] = None  # a recursive reference sees "no conversion" while it is built
        prepared = copy.copy(schema)
        fields = []
        needed: list[tuple[str, Convert]] = []
        for field in schema.get("fields", []):
            read, convert = _prepare(field["type"], named, space)
            fields.append({**field, "type": read})
            if convert is not None:
                needed.append((field["name"], convert))
        prepared["fields"] = fields
        converter = _record(needed) if needed else None
        named[full] = converter
        return prepared, converter
    if kind == "array":
        read, item = _prepare(schema["items"], named, namespace)
        return {**schema, "items": read}, (None if item is None else _each(item))
    if kind == "map":
        read, entry = _prepare(schema["values"], named, namespace)
        return {**schema, "values": read}, (None if entry is None else _each_value(entry))
    if kind == "bytes":
        return schema, _base64
    if kind in ("float", "double"):
        return schema, finite_or_text
    if kind == "fixed":
        named[_full_name(schema, namespace)[0]] = _base64
        return schema, _base64
    if kind == "enum":
        return schema, None
    if isinstance(kind, (dict, list)) or (isinstance(kind, str) and kind not in _PRIMITIVES):
        read, convert = _prepare(kind, named, namespace)
        return {**schema, "type": read}, convert
    return schema, None


_PRIMITIVES = frozenset(("null", "boolean", "int", "long", "float", "double", "string", "bytes"))


def _full_name(schema: dict[str, Any], namespace: str) -> tuple[str, str]:
    """(full name, the namespace of the names inside it) of a named type, as the Avro
    specification resolves them (and fastavro with it): a dotted name is full already; else
    the type's own ``namespace`` attribute counts before the enclosing one. A later
    reference by full name must find the same converter, or fastavro's plain value (raw
    bytes, for a fixed) would reach the event."""
    name = str(schema.get("name", ""))
    if "." in name:
        return name, name.rpartition(".")[0]
    space = schema.get("namespace")
    space = namespace if space is None else str(space)
    return (f"{space}.{name}" if space else name), space


def _prepare_union(
    branches: list[Any], named: dict[str, Convert | None], namespace: str
) -> tuple[Any, Convert | None]:
    prepared = [_prepare(branch, named, namespace) for branch in branches]
    others = [index for index, branch in enumerate(branches) if branch != "null"]
    if len(others) == 1:  # an optional value: null or one type, the common union
        read, convert = prepared[others[0]]
        reads = [read if index == others[0] else "null" for index in range(len(branches))]
        return reads, (None if convert is None else _unless_null(convert))
    # Several types: which one a value has, only the value tells. fastavro reads them with
    # their logical types (as Python objects), mapped by their Python type. Always walked:
    # a branch whose own converter is None may still hold a logical type fastavro turns
    # into an object (a uuid string becomes a UUID, which no filter on its text matched).
    return branches, _walk


def _named(named: dict[str, Convert | None], name: str) -> Convert | None:
    """A named type used again (or recursively): its converter, looked up when called."""
    if named.get(name) is None and name in named:
        # Not built yet (a recursive reference) or needing no conversion.
        return lambda value: (named[name] or _identity)(value)
    return named[name]


def _identity(value: Any) -> Any:
    return value


def _unless_null(convert: Convert) -> Convert:
    return lambda value: None if value is None else convert(value)


def _each(convert: Convert) -> Convert:
    return lambda values: [convert(value) for value in values]


def _each_value(convert: Convert) -> Convert:
    return lambda values: {key: convert(value) for key, value in values.items()}


def _record(fields: list[tuple[str, Convert]]) -> Convert:
    def convert(value: dict[str, Any]) -> dict[str, Any]:
        for name, field_convert in fields:
            item = value.get(name)
            if item is not None:
                value[name] = field_convert(item)
        return value

    return convert


def _walk(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _walk(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_walk(item) for item in value]
    if isinstance(value, bytes):
        return _base64(value)
    if isinstance(value, Decimal):
        return _decimal(value)
    if isinstance(value, float):
        return finite_or_text(value)
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
            return value.isoformat(timespec=_precision(value)) + "Z"
        return value.isoformat(timespec=_precision(value))
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dt.time):
        return value.isoformat(timespec=_precision(value))
    return value


def _precision(value: dt.datetime | dt.time) -> str:
    return "milliseconds" if value.microsecond % 1000 == 0 else "microseconds"
