"""The one seam between the pipeline and record processing: decode → filter → transform.

``build_processor`` compiles the Connector's filter and transform once; the returned
function maps a record to what should be delivered for it. Everything that can go wrong
with one record is reported as a :class:`RecordFailure` with its stage, never raised past
the lane, so one bad record cannot stop a partition.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sluice_runtime.config import Connector
from sluice_runtime.envelope import ENVELOPE, build_envelope
from sluice_runtime.records import Record, RecordFailure
from sluice_runtime.schemas.decoder import RecordDecoder, SchemaNotCached, build_decoder
from sluice_runtime.schemas.wire import DecodeError

Processed = list[Any] | RecordFailure
"""Event data items to deliver ([] = filtered out or dropped by a UDF), or a failure."""

Processor = Callable[[Record], Processed]

ChunkProcessor = Callable[[list[Record]], Awaitable[list[Processed]]]
"""What each record of a chunk produced, in order (a UDF run in a worker process)."""


def build_processor(
    connector: Connector,
    base_dir: Path | None = None,
    udf_source: str | None = None,
    *,
    udf_in_worker: bool = False,
    decoder: RecordDecoder | None = None,
) -> Processor:
    """Compile the Connector's filter and transform into one function of a record, run in
    this process (running a UDF's module code); raises SpecError naming the field when one
    does not compile. ``udf_source`` is the UDF's source when the caller has it already
    (else it is loaded as the spec says). The runtime itself runs UDFs in worker processes
    (``udf_pool.py``), which call this.

    ``decoder`` reads keys and values as source.kafka.keyFormat / valueFormat say (Avro,
    Protobuf, ...); the runtime passes one that raises SchemaNotCached, which this function
    lets through, when a schema must be fetched first (``schemas/runtime.py``). Without one,
    a spec that needs it gets a decoder that fetches schemas in place (offline tools)."""
    from sluice_runtime.patterns import compile_pattern, compile_patterns
    from sluice_runtime.transform import (
        RecordTransformError,
        TransformContext,
        compile_transform,
        load_udf_source,
    )

    spec = connector.spec
    if decoder is None:
        decoder = build_decoder(spec.source.kafka, fetch_in_place=True)
    matches: Callable[[Any], bool] | None = None
    if spec.filter is not None and spec.filter.pattern is not None:
        matches = compile_pattern(spec.filter.pattern, ("spec", "filter", "pattern"))
    elif spec.filter is not None and spec.filter.patterns is not None:
        matches = compile_patterns(spec.filter.patterns, ("spec", "filter", "patterns"))

    transform: Callable[[dict[str, Any]], list[Any]] | None = None
    if spec.transform is not None:
        where = ("spec", "transform")
        udf = spec.transform.udf
        if udf is not None and udf_source is None:
            udf_source = load_udf_source(udf, base_dir, (*where, "udf"))
        transform = compile_transform(
            spec.transform,
            TransformContext(connector.metadata.name, connector.metadata.namespace),
            udf_source,
            where,
            udf_in_worker=udf_in_worker,
        )

    # sink.recordFormat source: the event carries the record as read (the pass-through
    # envelope of its bytes), whatever the filter saw.
    as_read = decoder is not None and spec.sink.record_format == "source"
    if matches is None and transform is None and (decoder is None or as_read):
        return _pass_through

    make_envelope = build_envelope if decoder is None else decoder.envelope

    def process(record: Record) -> Processed:
        try:
            envelope = make_envelope(record)
        except SchemaNotCached:
            raise
        except DecodeError as error:
            return RecordFailure("decode", error.reason)
        except Exception as error:  # decoding must never take the process down
            return RecordFailure("decode", f"{type(error).__name__}: {error}")
        if matches is not None:
            try:
                if not matches(envelope):
                    return []
            except Exception as error:
                return RecordFailure("filter", f"{type(error).__name__}: {error}")
        if transform is None:
            return _ENVELOPE_ONLY if as_read else [envelope]
        try:
            return transform(envelope)
        except RecordTransformError as error:
            return RecordFailure("transform", error.reason)
        except Exception as error:
            return RecordFailure("transform", f"{type(error).__name__}: {error}")

    return process


def _pass_through(_record: Record) -> Processed:
    """No filter, no transform: the event's data is the record's envelope, which the
    payload encodes straight into the request (decoding bytes never fails)."""
    return _ENVELOPE_ONLY


_ENVELOPE_ONLY = [ENVELOPE]  # shared: the lane only reads it
