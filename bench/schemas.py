"""The throughput-avro row: Avro values (~200 bytes) in the registry wire format, decoded
and filtered on a decoded field, through one runtime process that decodes in its worker
(``runtime.processing: worker``); the same with decoding in the event loop (``inline``)
and the pass-through row's setup (JSON values, no filter) are measured side by side in the
same run."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import fastavro
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from bench import ROOT
from bench.kafka import wide_value
from bench.procs import BenchError
from bench.report import Row, Target
from bench.runtime import PARTITIONS, THROUGHPUT_ALSO, Context, throughput_pass

REGISTRY_SCRIPT = ROOT / "scripts" / "registry.sh"
TARGET = Target(">=", 100_000)

# The fields of bench.kafka's WIDE_VALUE, as an ad-view stream would carry them in Avro.
VIEW_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "AdView",
    "namespace": "bench",
    "fields": [
        {
            "name": "user",
            "type": {
                "type": "record",
                "name": "User",
                "fields": [
                    {"name": "id", "type": "long"},
                    {"name": "name", "type": "string"},
                    {"name": "tier", "type": "string"},
                ],
            },
        },
        {"name": "device", "type": "string"},
        {"name": "amount", "type": "double"},
        {"name": "country", "type": "string"},
        {"name": "campaign", "type": "string"},
        {"name": "page", "type": "string"},
        {"name": "referrer", "type": "string"},
        {"name": "session", "type": "string"},
        {"name": "timestamp", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    ],
}
FILTER = {"pattern": {"value": {"amount": [{"numeric": [">", 0]}], "country": ["US"]}}}


@contextlib.contextmanager
def schema_registry(log: Callable[[str], None]) -> Iterator[str]:
    """URL of a real schema registry: ``SLUICE_TEST_SCHEMA_REGISTRY`` when set, else the
    local one (scripts/registry.sh), stopped afterwards only when this started it."""
    external = os.environ.get("SLUICE_TEST_SCHEMA_REGISTRY")
    if external:
        log(f"using the schema registry at {external} (SLUICE_TEST_SCHEMA_REGISTRY)")
        yield external
        return

    def script(command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(REGISTRY_SCRIPT), command], capture_output=True, text=True, check=False, cwd=ROOT
        )

    was_running = script("status").returncode == 0
    result = script("up")
    if result.returncode != 0:
        raise BenchError(f"could not start the local schema registry: {result.stderr.strip()}")
    try:
        yield result.stdout.strip().splitlines()[-1]
    finally:
        if not was_running:
            script("down")


def avro_values(schema_id: int) -> Callable[[int, int], bytes]:
    parsed = fastavro.parse_schema(VIEW_SCHEMA)
    header = b"\x00" + schema_id.to_bytes(4, "big")

    def make(i: int, now_ms: int) -> bytes:
        user = i % 1000
        payload = io.BytesIO()
        payload.write(header)
        fastavro.schemaless_writer(
            payload,
            parsed,
            {
                "user": {"id": user, "name": f"user-{user}", "tier": "gold"},
                "device": "ios-17",
                "amount": 12.5,
                "country": "US",
                "campaign": "spring-sale-2026",
                "page": f"/products/{1000 + i % 9000}",
                "referrer": "https://search.example.com/?q=running+shoes&page=2",
                "session": "3f2b9c1e-5d4a-4b8e-9c7d-1a2b3c4d5e6f",
                "timestamp": now_ms,
            },
        )
        return payload.getvalue()

    return make


def register_view_schema(registry_url: str) -> int:
    """The id of VIEW_SCHEMA in the registry, under a subject of this bench process."""
    with SchemaRegistryClient({"url": registry_url}) as client:
        subject = f"bench-avro-{os.getpid()}-value"
        schema_id: int = client.register_schema(subject, Schema(json.dumps(VIEW_SCHEMA), "AVRO"))
    return schema_id


def avro_source(registry_url: str) -> dict[str, Any]:
    """source.kafka for the Avro rows: values in the registry's wire format."""
    return {"valueFormat": "avro", "schemaRegistry": {"url": registry_url}}


def avro_row(ctx: Context, registry_url: str, records: int) -> Row:
    window = {"maxMessages": 100, "maxInterval": "100ms"}
    also = {
        **THROUGHPUT_ALSO,
        "inline_records_per_s": ("inline", "records/s"),
        "inline_cpu_us_per_record": ("inline", "µs CPU/record"),
        "pass_through_records_per_s": ("pass-through", "records/s"),
    }
    row = Row(
        "throughput-avro",
        f"{records:,} keyed Avro records (~200-byte values, registry wire format) in "
        f"{PARTITIONS} partitions, decoded and filtered on two decoded fields (all match) in "
        "the runtime's worker process (runtime.processing: worker; the CPU figures count "
        "both processes), window as throughput-batch100; the same decoded in the event loop "
        "(inline) and pass-through (JSON values, no filter) measured in the same run",
        "records_per_s",
        "records/s",
        TARGET,
        also=also,
    )
    schema_id = register_view_schema(registry_url)
    avro_topic = ctx.kafka.create_topic(PARTITIONS, prefix="bench-avro")
    json_topic = ctx.kafka.create_topic(PARTITIONS, prefix="bench-avro-json")
    ctx.log(f"  producing {records:,} Avro and {records:,} JSON records")
    produced = ctx.kafka.produce_bulk(avro_topic, records, avro_values(schema_id))
    ctx.kafka.produce_bulk(json_topic, records, wide_value)
    row.details.update(
        records=records,
        partitions=PARTITIONS,
        window=window,
        filter=FILTER,
        mean_avro_value_bytes=round(produced.value_bytes, 1),
    )
    for index in range(ctx.repeat):
        tag = f"avro-{index + 1}"
        through, _ = throughput_pass(ctx, f"{tag}-pass-through", json_topic, records, window)
        passes = {}
        for processing in ("inline", "worker"):
            passes[processing], _ = throughput_pass(
                ctx,
                f"{tag}-{processing}",
                avro_topic,
                records,
                window,
                extra={"filter": FILTER, "runtime": {"processing": processing}},
                source_extra=avro_source(registry_url),
            )
        figures, inline = passes["worker"], passes["inline"]
        figures["inline_records_per_s"] = inline["records_per_s"]
        figures["inline_cpu_us_per_record"] = inline["runtime_cpu_us_per_record"]
        figures["pass_through_records_per_s"] = through["records_per_s"]
        row.runs.append(figures)
        ctx.log(
            f"  run {index + 1}/{ctx.repeat}: avro {figures['records_per_s']:,.0f} records/s "
            f"({figures['runtime_cpu_us_per_record']:.1f} µs CPU/record, "
            f"{figures['runtime_cpu_cores']:.2f} cores), inline "
            f"{inline['records_per_s']:,.0f} records/s "
            f"({inline['runtime_cpu_us_per_record']:.1f} µs CPU/record), pass-through "
            f"{through['records_per_s']:,.0f} records/s "
            f"({through['runtime_cpu_us_per_record']:.1f} µs CPU/record)"
        )
    return row
