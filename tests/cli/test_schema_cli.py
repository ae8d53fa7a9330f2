"""Offline tools for registry-encoded records: ``sluice validate`` checks the new fields
without a registry, ``sluice test-transform`` decodes a record's bytes with a schema file."""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import textwrap
from pathlib import Path
from typing import Any

import fastavro
import pytest
from google.protobuf import descriptor_pb2, timestamp_pb2

from sluice_cli.main import main
from sluice_cli.validate import run_validate

ORDER = {
    "type": "record",
    "name": "Order",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "total", "type": "double"},
        {"name": "placed", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "note", "type": ["null", "bytes"], "default": None},
    ],
}


def connector(tmp_path: Path, kafka_extra: str, spec_extra: str = "") -> Path:
    path = tmp_path / "connector.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            apiVersion: sluice.dev/v1alpha1
            kind: Connector
            metadata: {name: orders}
            spec:
              source:
                kafka:
                  bootstrapServers: ["127.0.0.1:1"]
                  topics: [orders]
            """
        )
        + textwrap.indent(textwrap.dedent(kafka_extra), "      ")
        + "  sink: {uri: 'http://127.0.0.1:1/'}\n"
        + textwrap.indent(textwrap.dedent(spec_extra), "  ")
    )
    return path


def avro_record(schema_id: int, value: dict[str, Any]) -> bytes:
    payload = io.BytesIO()
    fastavro.schemaless_writer(payload, fastavro.parse_schema(ORDER), value)
    return b"\x00" + schema_id.to_bytes(4, "big") + payload.getvalue()


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(["test-transform", *args])
    out, err = capsys.readouterr()
    code = exit_info.value.code
    return int(code or 0), json.loads(out) if out else None, err


def test_validate_accepts_the_new_fields_without_reaching_a_registry(tmp_path: Path) -> None:
    path = connector(
        tmp_path,
        """\
        valueFormat: avro
        keyFormat: string
        schemaRegistry:
          url: https://registry.invalid/apis/ccompat/v7
          auth: {secretRef: {name: registry-credentials}}
        """,
    )
    assert run_validate([str(path)]) == 0


@pytest.mark.parametrize(
    ("kafka_extra", "spec_extra", "message"),
    [
        ("valueFormat: avro\n", "", "valueFormat avro needs source.kafka.schemaRegistry"),
        ("keyFormat: xml\n", "", "spec.source.kafka.keyFormat"),
        (
            "valueFormat: protobuf\nschemaRegistry: {url: registry:8081}\n",
            "",
            "schemaRegistry.url must start with http:// or https://",
        ),
        (
            "valueFormat: avro\nschemaRegistry: {url: 'http://r/'}\n",
            "transform: {jsonPath: '$.value'}\n",
            "sink.recordFormat source sends the records as read",
        ),
    ],
)
def test_validate_points_at_each_mistake(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    kafka_extra: str,
    spec_extra: str,
    message: str,
) -> None:
    if "transform" in spec_extra:
        path = connector(tmp_path, kafka_extra, spec_extra)
        path.write_text(path.read_text().replace("sink: {", "sink: {recordFormat: source, "))
    else:
        path = connector(tmp_path, kafka_extra, spec_extra)
    assert run_validate([str(path)]) == 1
    assert message in capsys.readouterr().err


def test_test_transform_decodes_an_avro_record_with_a_schema_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    schema = tmp_path / "order.avsc"
    schema.write_text(json.dumps(ORDER))
    record = tmp_path / "record.bin"
    placed = dt.datetime(2026, 12, 1, 8, 30, 0, 123456, tzinfo=dt.UTC)
    record.write_bytes(
        avro_record(7, {"id": "o-1", "total": 12.5, "placed": placed, "note": b"hi"})
    )
    path = connector(
        tmp_path,
        "valueFormat: avro\nschemaRegistry: {url: 'http://127.0.0.1:1/'}\n",
        """\
        filter: {pattern: {value: {total: [{numeric: [">", 10]}]}}}
        transform:
          template:
            paths: {id: $.value.id, placed: $.value.placed, note: $.value.note}
            template: '{"id": <id>, "placed": <placed>, "note": <note>}'
        """,
    )
    code, out, err = run_cli(
        capsys, "-f", str(path), "--value", f"@{record}", "--value-schema", str(schema)
    )
    assert (code, err) == (0, "")
    assert out == {
        "filtered": False,
        "events": [{"id": "o-1", "placed": "2026-12-01T08:30:00.123456Z", "note": "aGk="}],
    }


def test_test_transform_reports_bytes_that_do_not_decode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    schema = tmp_path / "order.avsc"
    schema.write_text(json.dumps(ORDER))
    path = connector(tmp_path, "valueFormat: avro\nschemaRegistry: {url: 'http://r/'}\n")
    cut = base64.b64encode(b"\x00\x00\x00\x00\x07\x06o-").decode()
    code, out, err = run_cli(capsys, "-f", str(path), "--value", cut, "--value-schema", str(schema))
    assert (code, out) == (2, None)
    assert err.startswith("test-transform: decode failed: DESERIALIZATION_ERROR: ")


def test_test_transform_decodes_protobuf_with_a_descriptor_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    descriptors = descriptor_pb2.FileDescriptorSet()
    timestamp_pb2.DESCRIPTOR.CopyToProto(descriptors.file.add())
    schema = tmp_path / "timestamp.pb"
    schema.write_bytes(descriptors.SerializeToString())
    message = timestamp_pb2.Timestamp(seconds=1_764_578_096, nanos=500_000_000)
    # Wire format: magic byte, schema id 3, the message index [0] (one 0 byte), the message.
    value = b"\x00\x00\x00\x00\x03\x00" + message.SerializeToString()
    path = connector(tmp_path, "valueFormat: protobuf\nschemaRegistry: {url: 'http://r/'}\n")
    code, out, err = run_cli(
        capsys,
        "-f",
        str(path),
        "--value",
        base64.b64encode(value).decode(),
        "--value-schema",
        str(schema),
    )
    assert (code, err) == (0, "")
    assert out["events"][0]["value"] == "2025-12-01T08:34:56.500Z"
