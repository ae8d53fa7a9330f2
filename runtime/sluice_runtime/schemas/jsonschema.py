"""JSON Schema payloads: the payload after the wire-format header is the record's JSON.

The schema id must name a JSON schema the registry holds (else SCHEMA_NOT_FOUND); the value
is not validated against it again (the producer's serializer did), which keeps decoding at
the cost of one JSON parse.
"""

from __future__ import annotations

from typing import Any

import orjson

from sluice_runtime.exactjson import exact_reparse, may_hold_wide_integer
from sluice_runtime.schemas.registry import Decoder, RegistrySchema
from sluice_runtime.schemas.wire import DESERIALIZATION_ERROR, DecodeError


def compile_json_schema(schema: RegistrySchema, schema_id: int) -> Decoder:
    if schema.schema_type != "JSON":
        raise DecodeError(
            DESERIALIZATION_ERROR, f"schema {schema_id} is {schema.schema_type}, not JSON"
        )

    def decode(payload: bytes, start: int = 0, /) -> Any:
        if start:
            payload = payload[start:]
        try:
            value = orjson.loads(payload)
        except orjson.JSONDecodeError as error:
            raise DecodeError(
                DESERIALIZATION_ERROR,
                f"the payload of JSON schema {schema_id} is not JSON: {error}",
            ) from None
        if not may_hold_wide_integer(payload):
            return value
        try:
            return exact_reparse(payload)
        except ValueError as error:
            raise DecodeError(
                DESERIALIZATION_ERROR, f"the payload of JSON schema {schema_id}: {error}"
            ) from None

    return decode
