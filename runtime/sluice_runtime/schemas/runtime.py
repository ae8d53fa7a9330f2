"""How the runtime runs the decode stage: schemas fetched off the event loop, then the
records decoded in the loop (CPU only, from the cache).

A record whose schema is not cached waits while the schema is fetched in a thread (retried
while the registry is down), then is processed again; the records after it in its chunk
wait with it, so the partition's order holds and nothing past it can be committed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sluice_runtime.config import Connector, KafkaSource
from sluice_runtime.exactjson import dumps as exact_dumps
from sluice_runtime.processors import ChunkProcessor, Processed, Processor
from sluice_runtime.records import Record, RecordFailure
from sluice_runtime.schemas.decoder import RecordDecoder, SchemaNotCached, compiler_for
from sluice_runtime.schemas.wire import DecodeError


def build_chunk_processor(process: Processor, decoder: RecordDecoder) -> ChunkProcessor:
    """``process`` over a chunk of records, fetching the schemas they name as needed."""
    fetch = _fetcher(decoder)

    async def process_chunk(records: list[Record]) -> list[Processed]:
        results: list[Processed] = []
        append = results.append
        for record in records:
            while True:
                try:
                    append(process(record))
                    break
                except SchemaNotCached as miss:
                    await fetch(miss)
        return results

    return process_chunk


def build_udf_chunk_processor(run_udf: ChunkProcessor, decoder: RecordDecoder) -> ChunkProcessor:
    """For a UDF in its worker process (which holds no Secrets, so cannot ask the registry):
    records are decoded here and handed to the worker with their key and value as JSON;
    the results keep to the original records, so a dead-lettered record keeps its bytes."""
    fetch = _fetcher(decoder)

    async def process_chunk(records: list[Record]) -> list[Processed]:
        results: list[Processed | None] = []
        decoded: list[Record] = []
        for record in records:
            while True:
                try:
                    decoded.append(_as_json(record, decoder))
                    results.append(None)
                    break
                except SchemaNotCached as miss:
                    await fetch(miss)
                except DecodeError as error:
                    results.append(RecordFailure("decode", error.reason))
                    break
                except Exception as error:
                    results.append(RecordFailure("decode", f"{type(error).__name__}: {error}"))
                    break
        produced = iter(await run_udf(decoded) if decoded else [])
        return [next(produced) if result is None else result for result in results]

    return process_chunk


def _fetcher(decoder: RecordDecoder) -> Callable[[SchemaNotCached], Awaitable[None]]:
    # A decoder of text or bytes formats alone has no registry, and never asks for one.
    registry = decoder.registry

    async def fetch(miss: SchemaNotCached) -> None:
        assert registry is not None  # SchemaNotCached comes from registry formats only
        await registry.fetch_async(miss.fmt, miss.schema_id, compiler_for(miss.fmt))

    return fetch


def _as_json(record: Record, decoder: RecordDecoder) -> Record:
    envelope = decoder.envelope(record)
    key = None if record.key is None else exact_dumps(envelope["key"])
    value = None if record.value is None else exact_dumps(envelope["value"])
    return Record(
        record.topic,
        record.partition,
        record.offset,
        record.timestamp,
        key,
        value,
        record.headers,
    )


def with_json_formats(connector: Connector) -> Connector:
    """The Connector as a UDF's worker sees it: keys and values arrive decoded, as JSON."""
    spec = connector.spec
    kafka: KafkaSource = spec.source.kafka.model_copy(
        update={"key_format": "json", "value_format": "json"}
    )
    source = spec.source.model_copy(update={"kafka": kafka})
    return connector.model_copy(update={"spec": spec.model_copy(update={"source": source})})
