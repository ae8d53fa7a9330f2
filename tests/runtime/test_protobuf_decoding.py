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
