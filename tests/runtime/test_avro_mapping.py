"""Avro values map to JSON as docs/schemas.md says, written with fastavro's encoder."""

from __future__ import annotations

import datetime as dt
import io
import json
import math
import uuid
from decimal import Decimal
from typing import Any

import fastavro
import pytest

from sluice_runtime.schemas.avro import compile_avro, decode_with_schema_text
from sluice_runtime.schemas.registry import RegistrySchema
from sluice_runtime.schemas.wire import DecodeError

MOMENT = dt.datetime(2026, 12, 1, 23, 59, 58, 250000, tzinfo=dt.UTC)


def round_trip(field_type: Any, value: Any) -> Any:
    schema = {"type": "record", "name": "R", "fields": [{"name": "f", "type": field_type}]}
    payload = io.BytesIO()
    fastavro.schemaless_writer(payload, fastavro.parse_schema(schema), {"f": value})
    return decode_with_schema_text(json.dumps(schema), payload.getvalue())["f"]


@pytest.mark.parametrize(
    ("field_type", "value", "expected"),
    [
        ({"type": "long", "logicalType": "timestamp-millis"}, MOMENT, "2026-12-01T23:59:58.250Z"),
        (
            {"type": "long", "logicalType": "timestamp-micros"},
            MOMENT.replace(microsecond=250001),
            "2026-12-01T23:59:58.250001Z",
        ),
        (
            {"type": "long", "logicalType": "local-timestamp-millis"},
            MOMENT.replace(tzinfo=None),
            "2026-12-01T23:59:58.250",
        ),
        ({"type": "int", "logicalType": "date"}, dt.date(2026, 12, 1), "2026-12-01"),
        (
            {"type": "int", "logicalType": "time-millis"},
            dt.time(23, 59, 58, 250000),
            "23:59:58.250",
        ),
        ({"type": "long", "logicalType": "time-micros"}, dt.time(1, 2, 3, 4), "01:02:03.000004"),
        (
            {"type": "string", "logicalType": "uuid"},
            uuid.UUID(int=7),
            "00000000-0000-0000-0000-000000000007",
        ),
        (
            {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2},
            Decimal("-12.30"),
            "-12.30",
        ),
        ("bytes", b"\x00\xff", "AP8="),
        ({"type": "fixed", "name": "Two", "size": 2}, b"\x01\x02", "AQI="),
        ({"type": "enum", "name": "E", "symbols": ["A", "B"]}, "B", "B"),
        ({"type": "map", "values": "bytes"}, {"k": b"\x01"}, {"k": "AQ=="}),
        (
            {"type": "array", "items": {"type": "long", "logicalType": "timestamp-millis"}},
            [MOMENT],
            ["2026-12-01T23:59:58.250Z"],
        ),
        (["null", {"type": "long", "logicalType": "timestamp-millis"}], None, None),
        (
            ["null", {"type": "long", "logicalType": "timestamp-millis"}],
            MOMENT,
            "2026-12-01T23:59:58.250Z",
        ),
        (
            ["string", {"type": "long", "logicalType": "timestamp-millis"}],
            MOMENT,
            "2026-12-01T23:59:58.250Z",
        ),
        (["string", "long"], 5, 5),
        # What JSON cannot write, as the Protobuf JSON mapping writes it (JSON writers
        # put null there): in a field, in an optional field and in a union.
        ("double", math.nan, "NaN"),
        ("float", -math.inf, "-Infinity"),
        (["null", "double"], math.inf, "Infinity"),
        (["string", "double", {"type": "int", "logicalType": "date"}], math.nan, "NaN"),
        ("double", 1.5, 1.5),
        # In a union of several types the branch decides the mapping (fastavro's path had
        # to guess from the Python object: nanoseconds stayed a number).
        (
            ["null", "string", {"type": "long", "logicalType": "timestamp-nanos"}],
            1_764_633_598_250_000_001,
            "2025-12-01T23:59:58.250000001Z",
        ),
        (  # a uuid has no converter of its own: it stayed a UUID object, matched by no filter
            ["null", "int", {"type": "string", "logicalType": "uuid"}],
            uuid.UUID(int=7),
            "00000000-0000-0000-0000-000000000007",
        ),
    ],
)
def test_avro_values_map_to_json(field_type: Any, value: Any, expected: Any) -> None:
    assert round_trip(field_type, value) == expected


def test_recursive_records_and_named_types_used_twice() -> None:
    node = {
        "type": "record",
        "name": "Node",
        "fields": [
            {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "next", "type": ["null", "Node"], "default": None},
        ],
    }
    value = {"at": MOMENT, "next": {"at": MOMENT, "next": None}}
    assert round_trip(node, value) == {
        "at": "2026-12-01T23:59:58.250Z",
        "next": {"at": "2026-12-01T23:59:58.250Z", "next": None},
    }


@pytest.mark.parametrize("generated", [True, False], ids=["generated", "fastavro"])
def test_a_decimal_fixed_used_again_by_name_is_text_both_times(generated: bool) -> None:
    price = {"type": "fixed", "name": "Price", "size": 4, "logicalType": "decimal"}
    price.update(precision=9, scale=2)
    schema = {
        "type": "record",
        "name": "R",
        "fields": [{"name": "net", "type": price}, {"name": "gross", "type": "Price"}],
    }
    payload = (1230).to_bytes(4, "big", signed=True) + (-5).to_bytes(4, "big", signed=True)
    decode = compile_avro(RegistrySchema("AVRO", json.dumps(schema)), 1, generated=generated)
    assert decode(payload) == {"net": "12.30", "gross": "-0.05"}


def test_payloads_that_do_not_fit_the_schema_fail_to_decode() -> None:
    schema = json.dumps(
        {"type": "record", "name": "R", "fields": [{"name": "s", "type": "string"}]}
    )
    with pytest.raises(DecodeError, match="DESERIALIZATION_ERROR: the payload does not decode"):
        decode_with_schema_text(schema, b"\x0aab")  # a 5-byte string cut short
    with pytest.raises(DecodeError, match="1 bytes left after decoding"):
        decode_with_schema_text(schema, b"\x02a!")
    with pytest.raises(DecodeError, match="not a valid Avro schema"):
        decode_with_schema_text('{"type": "nope"}', b"")


@pytest.mark.parametrize("union_first", [True, False], ids=["union-first", "field-first"])
def test_a_record_with_a_logical_type_is_mapped_alike_in_a_union_and_by_name(
    union_first: bool,
) -> None:
    """One record type, defined in a union of several types or in a plain field and named
    in the other: the same mapping both times (one copy came out as a number, the other
    failed the record)."""
    moment = {
        "type": "record",
        "name": "Moment",
        "fields": [{"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}}],
    }
    union: list[Any] = ["null", "string", moment if union_first else "Moment"]
    plain: Any = "Moment" if union_first else moment
    fields = [{"name": "u", "type": union}, {"name": "p", "type": plain}]
    if not union_first:
        fields.reverse()
    schema = {"type": "record", "name": "Top", "fields": fields}
    payload = io.BytesIO()
    at = {"at": MOMENT}
    fastavro.schemaless_writer(payload, fastavro.parse_schema(schema), {"u": at, "p": at})
    decoded = decode_with_schema_text(json.dumps(schema), payload.getvalue())
    assert decoded == {
        "u": {"at": "2026-12-01T23:59:58.250Z"},
        "p": {"at": "2026-12-01T23:59:58.250Z"},
    }
