"""Records encoded with a schema registry, on the real broker and the real registry:
decoded before filter and transform, dead-lettered with their bytes when they cannot be."""

from __future__ import annotations

import base64
import datetime as dt
import http.server
import json
import select
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Consumer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONSerializer
from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from google.protobuf import (
    any_pb2,
    descriptor_pb2,
    descriptor_pool,
    message_factory,
    struct_pb2,
    timestamp_pb2,
)
from google.type import money_pb2

from testkit.function_server import FunctionServer, ThreadedFunctionServer
from tests.support import (
    RuntimeProcess,
    RuntimeThread,
    committed,
    connector_manifest,
    free_port,
    produce,
    wait_for,
)

pytestmark = pytest.mark.integration

ORDER_V1 = {
    "type": "record",
    "name": "Order",
    "namespace": "shop",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["NEW", "PAID"]}},
        {
            "name": "amount",
            "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2},
        },
        {"name": "placed", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    ],
}
ORDER_V2 = {  # a compatible evolution: a new field with a default
    **ORDER_V1,
    "fields": [*ORDER_V1["fields"], {"name": "channel", "type": "string", "default": "web"}],
}
KEY_SCHEMA = {
    "type": "record",
    "name": "OrderKey",
    "namespace": "shop",
    "fields": [{"name": "customer", "type": "long"}],
}
PLACED = dt.datetime(2026, 12, 1, 23, 59, 58, 250000, tzinfo=dt.UTC)
# Decoded in the runtime's event loop, or in its worker process (given the schemas by the
# runtime, which alone may ask the registry): the same records, the same outcomes.
PROCESSING = pytest.mark.parametrize("processing", ["inline", "worker"])


Encode = Callable[[Any, SerializationContext], bytes]


def serializer(registry: SchemaRegistryClient, schema: dict[str, Any]) -> Encode:
    return encoder(AvroSerializer(registry, json.dumps(schema)))


def encoder(serialize: Callable[[Any, SerializationContext], bytes | None]) -> Encode:
    """The serializer, typed as what it returns for a value that is not None."""

    def encode(value: Any, ctx: SerializationContext) -> bytes:
        encoded = serialize(value, ctx)
        assert encoded is not None
        return encoded

    return encode


def order(i: int, status: str) -> dict[str, Any]:
    return {"id": f"o{i}", "status": status, "amount": Decimal(f"{i}.50"), "placed": PLACED}


@pytest.fixture
def registry(schema_registry: str) -> Iterator[SchemaRegistryClient]:
    """confluent-kafka's registry client, for its serializers (closed after the test)."""
    with SchemaRegistryClient({"url": schema_registry}) as client:
        yield client


def read_all(bootstrap: str, topic: str, expected: int, timeout: float = 30) -> list[Any]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{time.time()}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    messages: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while len(messages) < expected and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                messages.append(message)
    finally:
        consumer.close()
    return messages


@PROCESSING
def test_avro_values_and_keys_are_filtered_and_templated_on_decoded_fields(
    kafka_bootstrap: str,
    schema_registry: str,
    registry: SchemaRegistryClient,
    make_topic: Callable[..., str],
    processing: str,
) -> None:
    topic = make_topic()
    values_v1, values_v2 = serializer(registry, ORDER_V1), serializer(registry, ORDER_V2)
    keys = serializer(registry, KEY_SCHEMA)
    value_ctx = SerializationContext(topic, MessageField.VALUE)
    key_ctx = SerializationContext(topic, MessageField.KEY)
    records = []
    for i in range(20):
        status = "PAID" if i % 2 else "NEW"
        if i == 13:  # written with v2 of the schema, among v1 records
            value = values_v2({**order(i, status), "channel": "app"}, value_ctx)
        else:
            value = values_v1(order(i, status), value_ctx)
        records.append((keys({"customer": 1000 + i}, key_ctx), value))
    produce(kafka_bootstrap, topic, records)

    with ThreadedFunctionServer() as function:
        manifest = connector_manifest(
            "avro-orders",
            kafka_bootstrap,
            topic,
            function.url,
            filter={"pattern": {"value": {"status": ["PAID"]}}},
            transform={
                "template": {
                    "paths": {
                        "id": "$.value.id",
                        "amount": "$.value.amount",
                        "placed": "$.value.placed",
                        "customer": "$.key.customer",
                    },
                    "template": '{"order": <id>, "amount": <amount>, "placed": <placed>, '
                    '"customer": <customer>}',
                }
            },
            window={"maxMessages": 100, "maxInterval": "100ms"},
        )
        manifest["spec"]["runtime"] = {"processing": processing}
        kafka = manifest["spec"]["source"]["kafka"]
        kafka.update(valueFormat="avro", keyFormat="avro", schemaRegistry={"url": schema_registry})
        with RuntimeThread(manifest) as runtime:
            wait_for(lambda: function.event_count >= 10, 60, "the ten paid orders")
            group = runtime.connector.consumer_group
            wait_for(
                lambda: committed(kafka_bootstrap, group, topic, 1) == {0: 20},
                30,
                "every record committed",
            )
        data = sorted((e["data"] for e in function.events()), key=lambda d: d["customer"])
    assert [d["order"] for d in data] == [f"o{i}" for i in range(1, 20, 2)]
    assert data[0] == {
        "order": "o1",
        "amount": "1.50",
        "placed": "2026-12-01T23:59:58.250Z",
        "customer": 1001,
    }


@PROCESSING
def test_records_that_cannot_be_decoded_are_dead_lettered_with_their_bytes(
    kafka_bootstrap: str,
    schema_registry: str,
    registry: SchemaRegistryClient,
    make_topic: Callable[..., str],
    processing: str,
) -> None:
    topic, dlq = make_topic(), make_topic(prefix="dlq")
    good = serializer(registry, ORDER_V1)(
        order(1, "PAID"), SerializationContext(topic, MessageField.VALUE)
    )
    unknown_schema = b"\x00" + (2_000_000_000).to_bytes(4, "big") + good[5:]
    not_wire_format = b'{"plain": "json"}'
    cut_short = good[:8]
    produce(
        kafka_bootstrap,
        topic,
        [
            (b"a", good),
            (b"b", unknown_schema),
            (b"c", not_wire_format),
            (b"d", cut_short),
            (b"e", good),
        ],
    )
    with ThreadedFunctionServer() as function:
        manifest = connector_manifest(
            "avro-dlq",
            kafka_bootstrap,
            topic,
            function.url,
            window={"maxMessages": 10, "maxInterval": "100ms"},
            delivery={"errorTolerance": "all", "deadLetter": {"kafka": {"topic": dlq}}},
        )
        manifest["spec"]["runtime"] = {"processing": processing}
        kafka = manifest["spec"]["source"]["kafka"]
        kafka.update(valueFormat="avro", schemaRegistry={"url": schema_registry})
        with RuntimeThread(manifest) as runtime:
            wait_for(lambda: function.event_count >= 2, 60, "the two good records")
            group = runtime.connector.consumer_group
            wait_for(
                lambda: committed(kafka_bootstrap, group, topic, 1) == {0: 5},
                30,
                "the partition committed past the bad records",
            )
        delivered = [e["data"]["value"]["id"] for e in function.events()]
    assert delivered == ["o1", "o1"]
    dead = {m.key(): m for m in read_all(kafka_bootstrap, dlq, 3)}
    assert set(dead) == {b"b", b"c", b"d"}
    expected = {
        b"b": (unknown_schema, "SCHEMA_NOT_FOUND: "),
        b"c": (not_wire_format, "DESERIALIZATION_ERROR: not in the schema registry wire format"),
        b"d": (cut_short, "DESERIALIZATION_ERROR: the payload does not decode"),
    }
    for key, (value, reason) in expected.items():
        headers = {k: v.decode() for k, v in dead[key].headers()}
        assert dead[key].value() == value  # the original bytes, not a decoded copy
        assert headers["sluice.error.stage"] == "decode"
        assert headers["sluice.error.reason"].startswith(reason), headers["sluice.error.reason"]


@PROCESSING
def test_protobuf_and_json_schema_values_are_decoded(
    kafka_bootstrap: str,
    schema_registry: str,
    registry: SchemaRegistryClient,
    make_topic: Callable[..., str],
    processing: str,
) -> None:
    proto_topic, json_topic = make_topic(), make_topic()
    # Struct and Timestamp: well-known types, mapped to JSON as the Protobuf mapping says.
    proto = encoder(
        ProtobufSerializer(struct_pb2.Struct, registry, {"use.deprecated.format": False})
    )
    ctx = SerializationContext(proto_topic, MessageField.VALUE)
    structs = []
    for i in range(6):
        value = struct_pb2.Struct()
        value.update({"kind": "click" if i % 3 == 0 else "view", "n": i})
        structs.append((None, proto(value, ctx)))
    produce(kafka_bootstrap, proto_topic, structs)
    stamp = encoder(
        ProtobufSerializer(timestamp_pb2.Timestamp, registry, {"use.deprecated.format": False})
    )
    produce(
        kafka_bootstrap,
        proto_topic,
        [
            (
                None,
                stamp(
                    timestamp_pb2.Timestamp(seconds=1_764_633_598, nanos=250_000_000),
                    SerializationContext(proto_topic, MessageField.VALUE),
                ),
            )
        ],
    )
    json_schema = json.dumps(
        {"type": "object", "properties": {"kind": {"type": "string"}, "n": {"type": "integer"}}}
    )
    json_ser = encoder(JSONSerializer(json_schema, registry))
    json_ctx = SerializationContext(json_topic, MessageField.VALUE)
    produce(
        kafka_bootstrap,
        json_topic,
        [
            (None, json_ser({"kind": "click" if i % 3 == 0 else "view", "n": i}, json_ctx))
            for i in range(6)
        ],
    )

    for topic, fmt, expected in (
        (proto_topic, "protobuf", 3),  # two clicks and the timestamp (a string, kept)
        (json_topic, "json-schema", 2),
    ):
        with ThreadedFunctionServer() as function:
            manifest = connector_manifest(
                f"decode-{fmt}",
                kafka_bootstrap,
                topic,
                function.url,
                filter={
                    "patterns": [{"value": {"kind": ["click"]}}, {"value": [{"prefix": "2025-"}]}]
                },
                window={"maxMessages": 10, "maxInterval": "100ms"},
            )
            manifest["spec"]["runtime"] = {"processing": processing}
            kafka = manifest["spec"]["source"]["kafka"]
            kafka.update(valueFormat=fmt, schemaRegistry={"url": schema_registry})
            with RuntimeThread(manifest):
                wait_for(_has_events(function, expected), 60, f"{fmt} records")
                time.sleep(0.5)
            values = [e["data"]["value"] for e in function.events()]
        assert values[:2] == [{"kind": "click", "n": 0}, {"kind": "click", "n": 3}], values
        assert all("valueSchemaId" in e["data"] for e in function.events())
        if fmt == "protobuf":
            assert values[2] == "2025-12-01T23:59:58.250Z"


def _has_events(function: FunctionServer, count: int) -> Callable[[], bool]:
    return lambda: function.event_count >= count


class Forwarder(socketserver.ThreadingTCPServer):
    """A TCP forwarder to the real registry, started late: until then the registry's
    address refuses connections, as a registry that is down does."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        super().__init__(("127.0.0.1", port), _Pipe)


class _Pipe(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        assert isinstance(self.server, Forwarder)
        with socket.create_connection(self.server.upstream) as upstream:
            sockets = [self.request, upstream]
            while True:
                readable, _, _ = select.select(sockets, [], [], 30)
                if not readable:
                    return
                for source in readable:
                    data = source.recv(65536)
                    if not data:
                        return
                    (upstream if source is self.request else self.request).sendall(data)


@PROCESSING
def test_a_registry_down_at_start_holds_the_records_until_it_comes_back(
    kafka_bootstrap: str,
    schema_registry: str,
    registry: SchemaRegistryClient,
    make_topic: Callable[..., str],
    processing: str,
) -> None:
    topic = make_topic()
    values = serializer(registry, ORDER_V1)
    ctx = SerializationContext(topic, MessageField.VALUE)
    produce(kafka_bootstrap, topic, [(None, values(order(i, "PAID"), ctx)) for i in range(10)])
    upstream = schema_registry.split("//", 1)[1].split("/", 1)
    host, port = upstream[0].rsplit(":", 1)
    late_port = free_port()
    with ThreadedFunctionServer() as function:
        manifest = connector_manifest(
            "registry-outage",
            kafka_bootstrap,
            topic,
            function.url,
            window={"maxMessages": 100, "maxInterval": "100ms"},
            delivery={"errorTolerance": "all"},  # an outage must not fail records even so
        )
        manifest["spec"]["runtime"] = {"processing": processing}
        kafka = manifest["spec"]["source"]["kafka"]
        kafka.update(
            valueFormat="avro",
            schemaRegistry={"url": f"http://127.0.0.1:{late_port}/{upstream[1]}"},
        )
        with RuntimeThread(manifest) as runtime:
            runtime.wait_assigned(1)
            time.sleep(3)  # several retries against the refused address
            group = runtime.connector.consumer_group
            assert function.event_count == 0
            assert committed(kafka_bootstrap, group, topic, 1) in ({}, {0: -1001}, {0: 0})
            forwarder = Forwarder(late_port, (host, int(port)))
            threading.Thread(target=forwarder.serve_forever, daemon=True).start()
            try:
                wait_for(lambda: function.event_count >= 10, 60, "every record once it is back")
                wait_for(
                    lambda: committed(kafka_bootstrap, group, topic, 1) == {0: 10},
                    30,
                    "every record committed",
                )
            finally:
                forwarder.shutdown()
                forwarder.server_close()
        ids = [e["data"]["value"]["id"] for e in function.events()]
    assert ids == [f"o{i}" for i in range(10)]


UDF = """
def handle_message(event, context):
    value = event["value"]
    if value["status"] != "PAID":
        return None
    return {"order": value["id"], "customer": event["key"]["customer"], "at": value["placed"]}
"""


def test_a_udf_sees_decoded_records_and_bad_ones_are_dead_lettered(
    kafka_bootstrap: str,
    schema_registry: str,
    registry: SchemaRegistryClient,
    make_topic: Callable[..., str],
) -> None:
    topic, dlq = make_topic(), make_topic(prefix="dlq")
    values, keys = serializer(registry, ORDER_V1), serializer(registry, KEY_SCHEMA)
    value_ctx = SerializationContext(topic, MessageField.VALUE)
    key_ctx = SerializationContext(topic, MessageField.KEY)
    records: list[tuple[bytes | str | None, bytes | str]] = [
        (keys({"customer": i}, key_ctx), values(order(i, "PAID" if i % 2 else "NEW"), value_ctx))
        for i in range(6)
    ]
    records.insert(3, (keys({"customer": 99}, key_ctx), b"not avro"))
    produce(kafka_bootstrap, topic, records)
    with ThreadedFunctionServer() as function:
        manifest = connector_manifest(
            "avro-udf",
            kafka_bootstrap,
            topic,
            function.url,
            transform={"udf": {"source": UDF}},
            window={"maxMessages": 10, "maxInterval": "100ms"},
            delivery={"errorTolerance": "all", "deadLetter": {"kafka": {"topic": dlq}}},
        )
        kafka = manifest["spec"]["source"]["kafka"]
        kafka.update(valueFormat="avro", keyFormat="avro", schemaRegistry={"url": schema_registry})
        with RuntimeThread(manifest) as runtime:
            wait_for(_has_events(function, 3), 60, "the three paid orders")
            group = runtime.connector.consumer_group
            wait_for(
                lambda: committed(kafka_bootstrap, group, topic, 1) == {0: 7},
                30,
                "every record committed",
            )
        data = [e["data"] for e in function.events()]
    assert data == [
        {"order": f"o{i}", "customer": i, "at": "2026-12-01T23:59:58.250Z"} for i in (1, 3, 5)
    ]
    [dead] = read_all(kafka_bootstrap, dlq, 1)
    assert dead.value() == b"not avro"
    headers = {k: v.decode() for k, v in dead.headers()}
    assert headers["sluice.error.stage"] == "decode"
    assert headers["sluice.error.reason"].startswith("DESERIALIZATION_ERROR: not in the")


@PROCESSING
def test_record_format_source_filters_on_decoded_fields_and_sends_the_bytes_as_read(
    kafka_bootstrap: str,
    schema_registry: str,
    registry: SchemaRegistryClient,
    make_topic: Callable[..., str],
    processing: str,
) -> None:
    topic = make_topic()
    values = serializer(registry, ORDER_V1)
    ctx = SerializationContext(topic, MessageField.VALUE)
    encoded = [values(order(i, "PAID" if i in (2, 4) else "NEW"), ctx) for i in range(6)]
    produce(kafka_bootstrap, topic, [(b"k", value) for value in encoded])
    with ThreadedFunctionServer() as function:
        manifest = connector_manifest(
            "avro-source",
            kafka_bootstrap,
            topic,
            function.url,
            filter={"pattern": {"value": {"status": ["PAID"]}}},
            window={"maxMessages": 10, "maxInterval": "100ms"},
        )
        manifest["spec"]["sink"]["recordFormat"] = "source"
        manifest["spec"]["runtime"] = {"processing": processing}
        kafka = manifest["spec"]["source"]["kafka"]
        kafka.update(valueFormat="avro", schemaRegistry={"url": schema_registry})
        with RuntimeThread(manifest) as runtime:
            wait_for(_has_events(function, 2), 60, "the two paid orders")
            group = runtime.connector.consumer_group
            wait_for(
                lambda: committed(kafka_bootstrap, group, topic, 1) == {0: 6},
                30,
                "every record committed",
            )
        data = [e["data"] for e in function.events()]
    assert [d["offset"] for d in data] == [2, 4]
    assert [base64.b64decode(d["value"]) for d in data] == [encoded[2], encoded[4]]
    assert all(d["valueEncoding"] == "base64" and "valueSchemaId" not in d for d in data)


def test_a_protobuf_schema_held_as_proto_text_fails_its_records_by_name(
    kafka_bootstrap: str,
    schema_registry: str,
    registry: SchemaRegistryClient,
    make_topic: Callable[..., str],
) -> None:
    topic, dlq = make_topic(), make_topic(prefix="dlq")
    text = 'syntax = "proto3";\npackage shop;\nmessage Order { string id = 1; }\n'
    schema_id = registry.register_schema(f"{topic}-value", Schema(text, "PROTOBUF"))
    record = b"\x00" + schema_id.to_bytes(4, "big") + b"\x00" + b"\x0a\x02o1"
    produce(kafka_bootstrap, topic, [(b"k", record)])
    with ThreadedFunctionServer() as function:
        manifest = connector_manifest(
            "proto-text",
            kafka_bootstrap,
            topic,
            function.url,
            delivery={"errorTolerance": "all", "deadLetter": {"kafka": {"topic": dlq}}},
        )
        kafka = manifest["spec"]["source"]["kafka"]
        kafka.update(valueFormat="protobuf", schemaRegistry={"url": schema_registry})
        with RuntimeThread(manifest):
            [dead] = read_all(kafka_bootstrap, dlq, 1, timeout=60)
        assert function.event_count == 0
    headers = {k: v.decode() for k, v in dead.headers()}
    assert dead.value() == record
    assert headers["sluice.error.reason"].startswith(
        f"DESERIALIZATION_ERROR: schema {schema_id} is .proto text"
    )


def _payment_classes() -> tuple[Any, Any]:
    """shop.Payment {id, placed: Timestamp, price: google.type.Money, detail: Any} and
    shop.Refund, in a pool of their own, as a producer's generated code would define them."""
    field = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(
        name="shop/payment.proto",
        package="shop",
        syntax="proto3",
        dependency=[
            "google/protobuf/timestamp.proto",
            "google/type/money.proto",
            "google/protobuf/any.proto",
        ],
    )
    payment = file.message_type.add(name="Payment")
    for number, (name, kind, type_name) in enumerate(
        (
            ("id", field.TYPE_STRING, None),
            ("placed", field.TYPE_MESSAGE, ".google.protobuf.Timestamp"),
            ("price", field.TYPE_MESSAGE, ".google.type.Money"),
            ("detail", field.TYPE_MESSAGE, ".google.protobuf.Any"),
        ),
        start=1,
    ):
        payment.field.add(name=name, number=number, type=kind, label=field.LABEL_OPTIONAL)
        if type_name:
            payment.field[-1].type_name = type_name
    refund = file.message_type.add(name="Refund")
    refund.field.add(name="reason", number=1, type=field.TYPE_STRING, label=field.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    for known in (timestamp_pb2, money_pb2, any_pb2):
        pool.AddSerializedFile(known.DESCRIPTOR.serialized_pb)
    pool.Add(file)
    return (
        message_factory.GetMessageClass(pool.FindMessageTypeByName("shop.Payment")),
        message_factory.GetMessageClass(pool.FindMessageTypeByName("shop.Refund")),
    )


def test_protobuf_well_known_types_decode_in_a_runtime_process_of_their_own(
    kafka_bootstrap: str,
    schema_registry: str,
    registry: SchemaRegistryClient,
    make_topic: Callable[..., str],
    tmp_path: Path,
) -> None:
    """The serializer registers no reference for google/protobuf/* or google/type/*: the
    runtime must carry them itself. Run as `sluice run` (a process that has not imported
    them, unlike this test's), with an Any packing a message of the record's own schema."""
    topic = make_topic()
    payment_class, refund_class = _payment_classes()
    encode = encoder(ProtobufSerializer(payment_class, registry, {"use.deprecated.format": False}))
    ctx = SerializationContext(topic, MessageField.VALUE)
    records: list[tuple[bytes | str | None, bytes | str]] = []
    for i in range(4):
        payment = payment_class(id=f"p{i}")
        payment.placed.FromSeconds(1_764_633_598 + i)
        payment.price.currency_code = "EUR" if i % 2 else "USD"
        payment.price.units = 10 + i
        payment.detail.Pack(refund_class(reason=f"r{i}"))
        records.append((None, encode(payment, ctx)))
    produce(kafka_bootstrap, topic, records)
    with ThreadedFunctionServer() as function:
        manifest = connector_manifest(
            "proto-wkt",
            kafka_bootstrap,
            topic,
            function.url,
            filter={"pattern": {"value": {"price": {"currency_code": ["EUR"]}}}},
            window={"maxMessages": 10, "maxInterval": "100ms"},
        )
        kafka = manifest["spec"]["source"]["kafka"]
        kafka.update(valueFormat="protobuf", schemaRegistry={"url": schema_registry})
        runtime = RuntimeProcess(manifest, tmp_path).start()
        try:
            wait_for(_has_events(function, 2), 60, "the two euro payments")
        finally:
            runtime.terminate()
        values = [e["data"]["value"] for e in function.events()]
    assert values == [
        {
            "id": f"p{i}",
            "placed": placed,
            "price": {"currency_code": "EUR", "units": 10 + i, "nanos": 0},
            "detail": {"@type": "type.googleapis.com/shop.Refund", "reason": f"r{i}"},
        }
        for i, placed in ((1, "2025-12-01T23:59:59Z"), (3, "2025-12-02T00:00:01Z"))
    ], (values, (tmp_path / "runtime.log").read_text()[-2000:])


def test_a_udf_sees_decoded_integers_beyond_64_bits_exactly(
    kafka_bootstrap: str,
    schema_registry: str,
    registry: SchemaRegistryClient,
    make_topic: Callable[..., str],
) -> None:
    """Decoded records go to the UDF's worker as JSON text: wide integers written exactly
    (they failed the record in stage decode)."""
    topic = make_topic()
    schema = json.dumps({"type": "object", "properties": {"account": {"type": "integer"}}})
    # Written by hand: the serializer's own JSON writer refuses integers beyond 64 bits.
    schema_id = registry.register_schema(f"{topic}-value", Schema(schema, "JSON"))
    record = b"\x00" + schema_id.to_bytes(4, "big") + b'{"account": %d}' % (10**30 + 1)
    produce(kafka_bootstrap, topic, [(None, record)])
    udf = (
        'def handle_message(event, context):\n    return {"next": event["value"]["account"] + 1}\n'
    )
    with ThreadedFunctionServer() as function:  # it parses bodies with exact integers
        manifest = connector_manifest(
            "json-schema-udf-wide",
            kafka_bootstrap,
            topic,
            function.url,
            transform={"udf": {"source": udf}},
            window={"maxMessages": 10, "maxInterval": "100ms"},
        )
        kafka = manifest["spec"]["source"]["kafka"]
        kafka.update(valueFormat="json-schema", schemaRegistry={"url": schema_registry})
        with RuntimeThread(manifest):
            wait_for(_has_events(function, 1), 60, "the record")
        assert [e["data"] for e in function.events()] == [{"next": 10**30 + 2}]


AVRO_V1_TEXT = json.dumps(ORDER_V1)
BROKEN_ANSWERS: list[tuple[int, bytes]] = [
    (200, json.dumps({"schema": AVRO_V1_TEXT, "references": [{"name": "x"}]}).encode()),
    (200, json.dumps({"schema": AVRO_V1_TEXT, "references": "abc"}).encode()),
    (200, json.dumps({"schema": AVRO_V1_TEXT, "references": [None]}).encode()),
    (200, b'{"schema": "x", "z": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
    (200, b'{"schema": "' + b"x" * (9 * 1024 * 1024) + b'"}'),
    (404, b'{"error_code": 404, "message": "no such path"}'),  # a wrong path, not a schema
]


class BrokenThenRealRegistry(http.server.ThreadingHTTPServer):
    """Answers the first requests with what no registry should send, then forwards each
    request to the real registry."""

    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.broken = list(BROKEN_ANSWERS)
        super().__init__(("127.0.0.1", 0), _BrokenThenReal)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _BrokenThenReal(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        assert isinstance(self.server, BrokenThenRealRegistry)
        if self.server.broken:
            status, body = self.server.broken.pop(0)
        else:
            answer = httpx.get(self.server.upstream + self.path)
            status, body = answer.status_code, answer.content
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_broken_registry_answers_hold_the_records_and_never_stop_the_runtime(
    kafka_bootstrap: str,
    schema_registry: str,
    registry: SchemaRegistryClient,
    make_topic: Callable[..., str],
) -> None:
    """Malformed references, a body nested 100,000 deep, 9 MB of schema, a 404 that is not
    the API's "not found": each is an outage (logged, retried, the record waits), never a
    crash loop and never a record failed for the registry's fault."""
    topic, dlq = make_topic(), make_topic(prefix="dlq")
    values = serializer(registry, ORDER_V1)
    ctx = SerializationContext(topic, MessageField.VALUE)
    produce(kafka_bootstrap, topic, [(None, values(order(i, "PAID"), ctx)) for i in range(5)])
    server = BrokenThenRealRegistry(schema_registry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with ThreadedFunctionServer() as function:
            manifest = connector_manifest(
                "registry-broken",
                kafka_bootstrap,
                topic,
                function.url,
                window={"maxMessages": 100, "maxInterval": "100ms"},
                delivery={"errorTolerance": "all", "deadLetter": {"kafka": {"topic": dlq}}},
            )
            kafka = manifest["spec"]["source"]["kafka"]
            kafka.update(valueFormat="avro", schemaRegistry={"url": server.url})
            with RuntimeThread(manifest) as runtime:
                wait_for(lambda: function.event_count >= 5, 90, "every record once it answers")
                assert not server.broken
                assert not runtime.runtime.stopping.is_set()
            ids = [e["data"]["value"]["id"] for e in function.events()]
    finally:
        server.shutdown()
        server.server_close()
    assert ids == [f"o{i}" for i in range(5)]
    assert read_all(kafka_bootstrap, dlq, 1, timeout=2) == []
