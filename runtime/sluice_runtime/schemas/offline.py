"""Decoding one record's bytes with a schema from a file, without a registry
(``sluice test-transform --value @record.bin --value-schema FILE``).

The schema file is what the registry would hold: an Avro schema (.avsc, JSON), a JSON
schema, or for Protobuf a descriptor set (``protoc --include_imports --descriptor_set_out``,
the file whose messages the record uses last) or one serialized FileDescriptorProto. The
bytes are the record's as Kafka holds them, in the registry wire format; the schema id in
their header is not looked up (the file stands for that schema).
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2

from sluice_runtime.config import RecordFormat
from sluice_runtime.envelope import decode_bytes
from sluice_runtime.schemas.decoder import compiler_for
from sluice_runtime.schemas.registry import RegistrySchema
from sluice_runtime.schemas.wire import DESERIALIZATION_ERROR, HEADER_SIZE, DecodeError, schema_id

_SCHEMA_TYPES = {"avro": "AVRO", "protobuf": "PROTOBUF", "json-schema": "JSON"}


def decode_offline(fmt: RecordFormat, raw: bytes, schema_file: Path | None) -> Any:
    """The value a record's bytes decode to under ``fmt``; DecodeError when they do not,
    ValueError when a schema file is missing or unreadable."""
    if fmt == "json":
        return decode_bytes(raw)[0]
    if fmt == "string":
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise DecodeError(DESERIALIZATION_ERROR, f"not UTF-8 text: {error}") from None
    if fmt == "bytes":
        return base64.b64encode(raw).decode("ascii")
    if schema_file is None:
        raise ValueError(f"a {fmt} record needs its schema file (--value-schema / --key-schema)")
    schema = _schema_from_file(fmt, schema_file)
    found = schema_id(raw)  # DecodeError when the bytes are not in the wire format
    return compiler_for(fmt)(schema, found)(raw[HEADER_SIZE:])


def _schema_from_file(fmt: RecordFormat, path: Path) -> RegistrySchema:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ValueError(f"cannot read the schema file {path}: {error.strerror}") from None
    if fmt != "protobuf":
        return RegistrySchema(_SCHEMA_TYPES[fmt], data.decode("utf-8"))
    files = descriptor_pb2.FileDescriptorSet()
    try:
        files.ParseFromString(data)
        parsed = list(files.file)
    except Exception:
        parsed = []
    if not parsed or not all(f.name for f in parsed):
        single = descriptor_pb2.FileDescriptorProto()
        try:
            single.ParseFromString(data)
        except Exception:
            raise ValueError(
                f"{path} is neither a descriptor set nor a serialized FileDescriptorProto"
            ) from None
        parsed = [single]
    *imports, main = parsed

    def encoded(file: descriptor_pb2.FileDescriptorProto) -> str:
        return base64.b64encode(file.SerializeToString()).decode("ascii")

    references = {f.name: RegistrySchema("PROTOBUF", encoded(f)) for f in imports}
    return RegistrySchema("PROTOBUF", encoded(main), references)
