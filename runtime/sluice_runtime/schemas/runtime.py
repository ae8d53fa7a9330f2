"""How the runtime runs the decode stage: schemas fetched off the event loop, then the
records decoded from the cache (CPU only): in the loop, or in the worker process
(``spec.runtime.processing: worker``, and always with a UDF), which is given the schemas.

A record whose schema is not cached waits while the schema is fetched in a thread (retried
while the registry is down), then is processed again; the records after it in its chunk
wait with it, so the partition's order holds and nothing past it can be committed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from sluice_runtime.processors import ChunkProcessor, Processed, Processor
from sluice_runtime.records import Record, RecordFailure
from sluice_runtime.schemas.decoder import RecordDecoder, SchemaNotCached, compiler_for
from sluice_runtime.schemas.wire import DecodeError

if TYPE_CHECKING:
    from sluice_runtime.udf_pool import WorkerPool


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


def build_worker_chunk_processor(pool: WorkerPool, decoder: RecordDecoder) -> ChunkProcessor:
    """For records decoded in the worker process, which holds no Secrets and so cannot ask
    the registry: the schemas they name are fetched here and handed to the pool, which
    gives each worker those it has not had; the bytes go to the worker as read. A record
    whose header cannot be used fails here, without a trip to the worker."""
    fetch = _fetcher(decoder)
    registry = decoder.registry

    def give(fmt: str, schema_id: int) -> None:
        assert registry is not None  # only registry formats name schemas
        schema = registry.schema(fmt, schema_id)
        assert schema is not None  # cached: the check found its decoder
        pool.add_schema(fmt, schema_id, schema)

    check = decoder.schema_check(give)

    async def process_chunk(records: list[Record]) -> list[Processed]:
        results: list[Processed | None] = []
        sent: list[Record] = []
        for record in records:
            while True:
                try:
                    check(record)
                    sent.append(record)
                    results.append(None)
                    break
                except SchemaNotCached as miss:
                    await fetch(miss)
                except DecodeError as error:
                    results.append(RecordFailure("decode", error.reason))
                    break
        if len(sent) == len(records):
            return await pool.process(sent)
        produced = iter(await pool.process(sent) if sent else [])
        return [next(produced) if result is None else result for result in results]

    return process_chunk


def _fetcher(decoder: RecordDecoder) -> Callable[[SchemaNotCached], Awaitable[None]]:
    # A decoder of text or bytes formats alone has no registry, and never asks for one.
    registry = decoder.registry

    async def fetch(miss: SchemaNotCached) -> None:
        assert registry is not None  # SchemaNotCached comes from registry formats only
        await registry.fetch_async(miss.fmt, miss.schema_id, compiler_for(miss.fmt))

    return fetch
