"""Records decoded in the runtime's worker process (``runtime.processing: worker``): the
worker cannot ask the registry, so the pool gives it the schemas the runtime fetched, and
gives them again to a worker started after the last one died.

The registry's part (fetching, outages, the dead-letter queue) runs on the real broker and
registry in test_schema_registry.py, for both processing modes; here the pool and a real
worker process are driven directly."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
from typing import Any

import fastavro
import orjson

from sluice_runtime.config import Connector, load_connector
from sluice_runtime.processors import build_processor
from sluice_runtime.records import Record, RecordFailure
from sluice_runtime.schemas.avro import compile_avro
from sluice_runtime.schemas.decoder import build_decoder
from sluice_runtime.schemas.registry import RegistrySchema
from sluice_runtime.udf_pool import WorkerPool

SCHEMA = {
    "type": "record",
    "name": "View",
    "fields": [
        {"name": "page", "type": "string"},
        {"name": "amount", "type": "double"},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    ],
}
SCHEMA_ID = 41


def _connector() -> Connector:
    return load_connector(
        {
            "apiVersion": "sluice.dev/v1alpha1",
            "kind": "Connector",
            "metadata": {"name": "views", "namespace": "shop"},
            "spec": {
                "source": {
                    "kafka": {
                        "bootstrapServers": ["kafka:9092"],
                        "topics": ["views"],
                        "valueFormat": "avro",
                        "schemaRegistry": {"url": "http://registry.invalid"},
                    }
                },
                "filter": {"pattern": {"value": {"amount": [{"numeric": [">", 1]}]}}},
                "sink": {"uri": "http://function"},
                "runtime": {"processing": "worker"},
            },
        }
    )


def _avro(page: str, amount: float, schema_id: int = SCHEMA_ID) -> bytes:
    out = io.BytesIO()
    out.write(b"\x00" + schema_id.to_bytes(4, "big"))
    record = {"page": page, "amount": amount, "at": 1_764_633_598_250}
    fastavro.schemaless_writer(out, fastavro.parse_schema(SCHEMA), record)
    return out.getvalue()


def _records(start: int, values: list[bytes]) -> list[Record]:
    return [Record("views", 0, start + i, 1_700_000_000_000, b"k", v) for i, v in enumerate(values)]


def _inline(connector: Connector, records: list[Record]) -> list[Any]:
    """What the event loop's processor makes of the records, as JSON values."""
    decoder = build_decoder(connector.spec.source.kafka)
    assert decoder is not None
    assert decoder.registry is not None
    schema = RegistrySchema("AVRO", json.dumps(SCHEMA))
    decoder.registry.install("avro", SCHEMA_ID, schema, compile_avro)
    process = build_processor(connector, decoder=decoder)
    return [process(record) for record in records]


def _events(results: list[Any]) -> list[Any]:
    """Each record's events as JSON values (a worker's are JSON text), failures as is."""
    return [
        r
        if isinstance(r, RecordFailure)
        else [orjson.loads(e if isinstance(e, bytes) else orjson.dumps(e)) for e in r]
        for r in results
    ]


def test_the_worker_decodes_as_the_event_loop_and_gets_the_schemas_again_after_a_crash() -> None:
    connector = _connector()
    first = _records(0, [_avro("/a", 2.5), _avro("/b", 0.5), _avro("/c", 9.0)])
    second = _records(3, [_avro("/d", 3.0), b"\x00\x00\x00\x00\x29\xff"])

    async def run() -> tuple[list[Any], list[Any]]:
        pool = WorkerPool(connector, None)
        await pool.start()
        try:
            pool.add_schema("avro", SCHEMA_ID, RegistrySchema("AVRO", json.dumps(SCHEMA)))
            before = await pool.process(first)
            worker = pool._worker
            assert worker is not None
            os.killpg(worker.process.pid, signal.SIGKILL)  # as the kernel's OOM killer would
            await worker.process.wait()
            after = await pool.process(second)  # a new worker, which must be given it again
            return before, after
        finally:
            await pool.close()

    before, after = asyncio.run(run())
    expected = _inline(connector, first + second)
    assert _events(before + after) == _events(expected)
    assert [len(r) for r in before] == [1, 0, 1]  # the filter ran in the worker
    assert _events(before)[0][0]["value"] == {
        "page": "/a",
        "amount": 2.5,
        "at": "2025-12-01T23:59:58.250Z",
    }
    assert _events(after)[0][0]["value"]["page"] == "/d"
    failure = after[1]
    assert isinstance(failure, RecordFailure)
    assert failure.stage == "decode"
    assert failure.reason.startswith("DESERIALIZATION_ERROR"), failure.reason


def test_a_record_naming_a_schema_the_worker_was_not_given_fails_in_decode() -> None:
    connector = _connector()

    async def run() -> list[Any]:
        pool = WorkerPool(connector, None)
        await pool.start()
        try:
            return await pool.process(_records(0, [_avro("/a", 2.5, schema_id=77)]))
        finally:
            await pool.close()

    [failure] = asyncio.run(run())
    assert isinstance(failure, RecordFailure)
    assert failure.stage == "decode"
    assert failure.reason.startswith("SCHEMA_NOT_FOUND"), failure.reason
