"""The Protobuf decoder's message-index array, read as confluent-kafka's deserializer reads
it: an index outside the schema's messages fails the record, never picks another message."""

from __future__ import annotations

import base64

import pytest
from google.protobuf import descriptor_pb2

from sluice_runtime.schemas.protobuf import compile_protobuf
from sluice_runtime.schemas.registry import Decoder, RegistrySchema
from sluice_runtime.schemas.wire import DecodeError

FIELD = descriptor_pb2.FieldDescriptorProto


def _decoder() -> Decoder:
    file = descriptor_pb2.FileDescriptorProto(name="t.proto", package="p", syntax="proto3")
    for name in ("Payment", "Refund"):
        message = file.message_type.add(name=name)
        message.field.add(name="n", number=1, type=FIELD.TYPE_INT64, label=FIELD.LABEL_OPTIONAL)
    return compile_protobuf(
        RegistrySchema("PROTOBUF", base64.b64encode(file.SerializeToString()).decode()), 9
    )


def test_the_indexes_name_the_message_that_is_decoded() -> None:
    decode = _decoder()
    assert decode(b"\x00" + b"\x08\x07") == {"n": 7}
    assert decode(b"\x02\x02" + b"\x08\x07") == {"n": 7}


@pytest.mark.parametrize(
    "indexes",
    [
        pytest.param(b"\x02\x01", id="minus-one"),  # count 1, index -1 (zig-zag)
        pytest.param(b"\x02\x04", id="past-the-end"),
        pytest.param(b"\x04\x00\x00", id="no-nested-message"),
    ],
)
def test_an_index_outside_the_schema_fails_the_record(indexes: bytes) -> None:
    with pytest.raises(DecodeError, match="is not in Protobuf schema 9"):
        _decoder()(indexes + b"\x08\x07")


def _proto2_decoder() -> Decoder:
    """proto2 p.Outer {string s; repeated string many; Inner inner; map<string, string> m;
    bytes raw} with p.Inner {string s}."""
    file = descriptor_pb2.FileDescriptorProto(name="s.proto", package="p", syntax="proto2")
    inner = file.message_type.add(name="Inner")
    inner.field.add(name="s", number=1, type=FIELD.TYPE_STRING, label=FIELD.LABEL_OPTIONAL)
    outer = file.message_type.add(name="Outer")
    outer.field.add(name="s", number=1, type=FIELD.TYPE_STRING, label=FIELD.LABEL_OPTIONAL)
    outer.field.add(name="many", number=2, type=FIELD.TYPE_STRING, label=FIELD.LABEL_REPEATED)
    outer.field.add(
        name="inner",
        number=3,
        type=FIELD.TYPE_MESSAGE,
        label=FIELD.LABEL_OPTIONAL,
        type_name=".p.Inner",
    )
    entry = outer.nested_type.add(name="MEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=FIELD.TYPE_STRING, label=FIELD.LABEL_OPTIONAL)
    entry.field.add(name="value", number=2, type=FIELD.TYPE_STRING, label=FIELD.LABEL_OPTIONAL)
    outer.field.add(
        name="m",
        number=4,
        type=FIELD.TYPE_MESSAGE,
        label=FIELD.LABEL_REPEATED,
        type_name=".p.Outer.MEntry",
    )
    outer.field.add(name="raw", number=5, type=FIELD.TYPE_BYTES, label=FIELD.LABEL_OPTIONAL)
    return compile_protobuf(
        RegistrySchema("PROTOBUF", base64.b64encode(file.SerializeToString()).decode()), 9
    )


def _length_delimited(number: int, data: bytes) -> bytes:
    return bytes([number << 3 | 2, len(data)]) + data


BAD = b"\xff\xfe"


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param(_length_delimited(1, BAD), id="field"),
        pytest.param(_length_delimited(2, b"ok") + _length_delimited(2, BAD), id="repeated"),
        pytest.param(_length_delimited(3, _length_delimited(1, BAD)), id="nested"),
        pytest.param(
            _length_delimited(4, _length_delimited(1, BAD) + _length_delimited(2, b"v")),
            id="map-key",
        ),
        pytest.param(
            _length_delimited(4, _length_delimited(1, b"k") + _length_delimited(2, BAD)),
            id="map-value",
        ),
    ],
)
def test_a_proto2_string_that_is_not_utf8_fails_the_record(fields: bytes) -> None:
    """proto2 parses such strings without a check; the JSON mapping then wrote the bytes'
    Python repr ("b'\\\\xff\\\\xfe'") as if it were the text sent."""
    with pytest.raises(DecodeError, match="is not UTF-8"):
        _proto2_decoder()(b"\x02\x02" + fields)


def test_proto2_text_and_bytes_fields_decode() -> None:
    record = (
        _length_delimited(1, "é".encode())
        + _length_delimited(3, _length_delimited(1, b"in"))
        + _length_delimited(4, _length_delimited(1, b"k") + _length_delimited(2, b"v"))
        + _length_delimited(5, BAD)  # bytes may hold anything
    )
    decoded = _proto2_decoder()(b"\x02\x02" + record)
    assert decoded == {
        "s": "é",
        "many": [],
        "inner": {"s": "in"},
        "m": {"k": "v"},
        "raw": base64.b64encode(BAD).decode(),
    }
