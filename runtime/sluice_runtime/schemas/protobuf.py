"""Protobuf payloads decoded with the protobuf runtime, from the schema the record names.

After the wire-format header comes the message-index array (which message of the schema's
file, then which nested message): zig-zag varints, a count then the indexes, where a single
0 byte means the first message. Schemas are read as the serialized FileDescriptorProto
(base64): the form confluent-kafka's Python serializer registers, and the form Confluent
Schema Registry returns for any Protobuf schema when asked (``?format=serialized``, which
the registry client sends). A schema that arrives as .proto text (from a registry that
cannot convert it) fails its records with DESERIALIZATION_ERROR naming that.

Values map to JSON by the Protobuf JSON mapping (docs/schemas.md), keeping the field names
of the .proto file, printing fields left at their default (so a filter on ``0`` or ``""``
sees them), writing 64-bit integers as numbers where they fit a double exactly, and the
well-known types as the mapping says: Timestamp → "2026-12-01T23:59:58.250Z", Duration →
"1.5s", wrappers → their value, Struct / Value / ListValue → JSON, Any → object with "@type".
"""

from __future__ import annotations

import base64
import functools
import importlib
from collections.abc import Callable
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, FileDescriptor

from sluice_runtime.schemas.registry import Decoder, RegistrySchema
from sluice_runtime.schemas.wire import DESERIALIZATION_ERROR, DecodeError


def compile_protobuf(schema: RegistrySchema, schema_id: int) -> Decoder:
    if schema.schema_type != "PROTOBUF":
        raise DecodeError(
            DESERIALIZATION_ERROR, f"schema {schema_id} is {schema.schema_type}, not PROTOBUF"
        )
    pool = descriptor_pool.DescriptorPool()
    try:
        file_proto = _add_file(pool, schema, schema_id, {})
        file = pool.FindFileByName(file_proto.name)
    except DecodeError:
        raise
    except Exception as error:
        raise DecodeError(
            DESERIALIZATION_ERROR, f"schema {schema_id} is not a usable Protobuf schema: {error}"
        ) from None
    top = list(file.message_types_by_name.values())
    if not top:
        raise DecodeError(DESERIALIZATION_ERROR, f"schema {schema_id} defines no message")
    classes: dict[tuple[int, ...], Callable[[bytes], Any]] = {}
    # proto2 does not check that strings are UTF-8 when parsing: such a string comes back
    # as bytes, which the JSON mapping would write as its Python repr ("b'\\xff'").
    unchecked_strings = file_proto.syntax in ("", "proto2")

    def message_class(indexes: tuple[int, ...]) -> Callable[[bytes], Any]:
        parse = classes.get(indexes)
        if parse is None:
            descriptor: Descriptor = _message_at(file.message_types_by_name, indexes, schema_id)
            parse = classes[indexes] = message_factory.GetMessageClass(descriptor).FromString
        return parse

    def decode(payload: bytes, start: int = 0, /) -> Any:
        if start:
            payload = payload[start:]
        try:
            indexes, start = _message_indexes(payload)
            message = message_class(indexes)(payload[start:])
            if unchecked_strings and _has_raw_string(message):
                raise DecodeError(
                    DESERIALIZATION_ERROR,
                    f"a string field of Protobuf schema {schema_id} is not UTF-8",
                )
            # An Any's @type is looked up in the schema's own pool, not the process's.
            return json_format.MessageToDict(
                message,
                always_print_fields_with_no_presence=True,
                preserving_proto_field_name=True,
                unquote_int64_if_possible=True,
                descriptor_pool=pool,
            )
        except DecodeError:
            raise
        except Exception as error:
            raise DecodeError(
                DESERIALIZATION_ERROR,
                f"the payload does not decode with Protobuf schema {schema_id}: "
                f"{type(error).__name__}: {error}",
            ) from None

    return decode


def _add_file(
    pool: descriptor_pool.DescriptorPool,
    schema: RegistrySchema,
    schema_id: int,
    added: dict[str, descriptor_pb2.FileDescriptorProto],
) -> descriptor_pb2.FileDescriptorProto:
    file_proto = _file_proto(schema.text, schema_id)
    if file_proto.name in added:
        return added[file_proto.name]
    for dependency in file_proto.dependency:
        if dependency in added:
            continue
        referenced = schema.references.get(dependency)
        if referenced is not None:
            _add_file(pool, referenced, schema_id, added)
            continue
        # Well-known types are not registered by the serializers: the reader carries them.
        known = _well_known_files().get(dependency)
        if known is None:
            raise DecodeError(
                DESERIALIZATION_ERROR,
                f"schema {schema_id} imports {dependency}, which is neither a reference "
                "nor a well-known type",
            )
        _add_well_known(pool, known, added)
    pool.Add(file_proto)
    added[file_proto.name] = file_proto
    return file_proto


_WELL_KNOWN_MODULES = (
    "google.protobuf.any_pb2",
    "google.protobuf.api_pb2",
    "google.protobuf.descriptor_pb2",
    "google.protobuf.duration_pb2",
    "google.protobuf.empty_pb2",
    "google.protobuf.field_mask_pb2",
    "google.protobuf.source_context_pb2",
    "google.protobuf.struct_pb2",
    "google.protobuf.timestamp_pb2",
    "google.protobuf.type_pb2",
    "google.protobuf.wrappers_pb2",
    "google.type.calendar_period_pb2",
    "google.type.color_pb2",
    "google.type.date_pb2",
    "google.type.datetime_pb2",
    "google.type.dayofweek_pb2",
    "google.type.decimal_pb2",
    "google.type.expr_pb2",
    "google.type.fraction_pb2",
    "google.type.interval_pb2",
    "google.type.latlng_pb2",
    "google.type.localized_text_pb2",
    "google.type.money_pb2",
    "google.type.month_pb2",
    "google.type.phone_number_pb2",
    "google.type.postal_address_pb2",
    "google.type.quaternion_pb2",
    "google.type.timeofday_pb2",
    "confluent_kafka.schema_registry.confluent.meta_pb2",
    "confluent_kafka.schema_registry.confluent.type.decimal_pb2",
    "confluent_kafka.schema_registry.confluent.types.decimal_pb2",
)
"""The files confluent-kafka's Protobuf serializer never registers as references
(google/protobuf/*, google/type/* and confluent/*), so its reader carries them: the same
list. They are imported here by name, never looked up in the process's default pool, which
holds only what some module happened to import."""


@functools.cache
def _well_known_files() -> dict[str, FileDescriptor]:
    files: dict[str, FileDescriptor] = {}
    for module_name in _WELL_KNOWN_MODULES:
        try:
            descriptor: FileDescriptor = importlib.import_module(module_name).DESCRIPTOR
        except ImportError:  # pragma: no cover - each ships with a runtime dependency
            continue
        files[descriptor.name] = descriptor
    return files


def _has_raw_string(message: Any) -> bool:
    """Whether a string field anywhere in ``message`` holds bytes (not UTF-8)."""
    for field, value in message.ListFields():
        items = value if field.is_repeated else (value,)
        if field.type == FieldDescriptor.TYPE_STRING:
            if any(isinstance(item, bytes) for item in items):
                return True
        elif field.type in (FieldDescriptor.TYPE_MESSAGE, FieldDescriptor.TYPE_GROUP):
            entry = field.message_type
            if entry.GetOptions().map_entry:
                key, item = entry.fields_by_name["key"], entry.fields_by_name["value"]
                if key.type == FieldDescriptor.TYPE_STRING and any(
                    isinstance(k, bytes) for k in value
                ):
                    return True
                values = value.values()
                if item.type == FieldDescriptor.TYPE_STRING:
                    found = any(isinstance(v, bytes) for v in values)
                else:
                    is_message = item.type == FieldDescriptor.TYPE_MESSAGE
                    found = is_message and any(_has_raw_string(v) for v in values)
                if found:
                    return True
            elif any(_has_raw_string(item) for item in items):
                return True
    return False


def _add_well_known(
    pool: descriptor_pool.DescriptorPool,
    known: FileDescriptor,
    added: dict[str, descriptor_pb2.FileDescriptorProto],
) -> None:
    """A well-known file, after the well-known files it imports (api.proto imports
    type.proto, which imports any.proto)."""
    if known.name in added:
        return
    for dependency in known.dependencies:
        _add_well_known(pool, dependency, added)
    known_proto = descriptor_pb2.FileDescriptorProto()
    known.CopyToProto(known_proto)
    added[known.name] = known_proto
    pool.Add(known_proto)


def _file_proto(text: str, schema_id: int) -> descriptor_pb2.FileDescriptorProto:
    file_proto = descriptor_pb2.FileDescriptorProto()
    try:
        file_proto.ParseFromString(base64.b64decode(text, validate=True))
    except Exception:
        raise DecodeError(
            DESERIALIZATION_ERROR,
            f"schema {schema_id} is .proto text; only schemas registered as a serialized "
            "FileDescriptorProto are read",
        ) from None
    return file_proto


def _message_at(top: Any, indexes: tuple[int, ...], schema_id: int) -> Descriptor:
    messages = list(top.values())
    descriptor: Descriptor | None = None
    for index in indexes:
        if not 0 <= index < len(messages):
            raise DecodeError(
                DESERIALIZATION_ERROR,
                f"message index {list(indexes)} is not in Protobuf schema {schema_id}",
            )
        descriptor = messages[index]
        messages = list(descriptor.nested_types)
    assert descriptor is not None
    return descriptor


def _message_indexes(payload: bytes) -> tuple[tuple[int, ...], int]:
    count, position = _zigzag(payload, 0)
    if count == 0:
        return (0,), position
    if count < 0 or count > 64:
        raise DecodeError(DESERIALIZATION_ERROR, f"a message-index count of {count}")
    indexes = []
    for _ in range(count):
        index, position = _zigzag(payload, position)
        indexes.append(index)
    return tuple(indexes), position


def _zigzag(data: bytes, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if position >= len(data):
            raise DecodeError(DESERIALIZATION_ERROR, "the message-index array is cut short")
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
        shift += 7
        if shift > 63:
            raise DecodeError(DESERIALIZATION_ERROR, "a message index is not a varint")
    return (result >> 1) ^ -(result & 1), position
