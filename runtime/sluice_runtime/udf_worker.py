"""The worker: a child process that runs decode → filter → transform for the runtime,
always for a UDF and with ``spec.runtime.processing: worker`` (``udf_pool.py``).

A UDF is user code. Run inside the runtime it could end the process (``os._exit``), freeze
it (an endless loop), or read the Kafka password and the sink's token from the
environment. Here it runs in a process of its own, started with an environment that holds
no Secrets, under a memory limit, and the runtime gives each chunk of records a deadline
(``udf_pool.py``).

The conversation, over the worker's stdin and stdout, one length-prefixed frame at a time:

    runtime → worker   JSON {"connector": manifest, "udfSource": text}
    worker  → runtime  JSON {"ready": true}  or  {"error": "transform.udf: ..."}
    runtime → worker   the length of a pickle of the schemas this worker has not had
                       yet, as (format, id, RegistrySchema), that pickle, then a pickle
                       of a chunk of records as tuples, read as Kafka holds them
                                                                      (repeated)
    worker  → runtime  per record: 0, the count of its events and each event as
                       length-prefixed JSON; or 1, the stage and the reason it failed.
                       When every record of the chunk produced exactly one event (the
                       common case): 2, then each event's length, then the events

Events travel as the JSON the runtime will put into the request body, so it neither
parses nor re-encodes them. The runtime trusts nothing the worker says: the answer is
never unpickled, is bounded in size, checked in shape, and each event is checked to be
exactly one JSON document before it is embedded. The UDF's own prints go to stderr, not
into the conversation.
"""

from __future__ import annotations

import os
import pickle
import struct
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, BinaryIO

import orjson

from sluice_runtime.envelope import encode_envelope
from sluice_runtime.exactjson import dumps as exact_dumps
from sluice_runtime.exactjson import loads as exact_loads
from sluice_runtime.records import ENVELOPE, Record, RecordFailure, Stage
from sluice_runtime.schemas.decoder import (
    RecordDecoder,
    SchemaNotCached,
    compiler_for,
    needs_decoder,
)
from sluice_runtime.schemas.registry import Registry
from sluice_runtime.schemas.wire import SCHEMA_NOT_FOUND

if TYPE_CHECKING:
    from sluice_runtime.config import Connector

HEADER = struct.Struct(">I")
LENGTH = struct.Struct(">I")
FAILURE = struct.Struct(">BI")  # stage index, reason length
ONE_EACH = b"\x02"  # a chunk answer where every record produced exactly one event
STAGES: tuple[Stage, ...] = ("decode", "filter", "transform")
MAX_ANSWER = 64 << 20  # bytes of one answer the runtime reads at most


def write_frame(stream: BinaryIO, payload: bytes) -> None:
    stream.write(HEADER.pack(len(payload)))
    stream.write(payload)
    stream.flush()


def read_frame(stream: BinaryIO) -> bytes | None:
    head = stream.read(HEADER.size)
    if len(head) < HEADER.size:
        return None
    (length,) = HEADER.unpack(head)
    payload = stream.read(length)
    return payload if len(payload) == length else None


def _private_streams() -> tuple[BinaryIO, BinaryIO]:
    """The conversation's pipes, moved off fds 0 and 1: what the UDF prints goes to stderr
    and what it reads from stdin is empty."""
    conversation_in = os.fdopen(os.dup(0), "rb")
    conversation_out = os.fdopen(os.dup(1), "wb")
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return conversation_in, conversation_out


def main() -> int:
    conversation_in, conversation_out = _private_streams()
    from sluice_runtime.config import load_connector
    from sluice_runtime.logs import setup_logging
    from sluice_runtime.processors import build_processor

    hello = read_frame(conversation_in)
    if hello is None:
        return 1
    setup = exact_loads(hello)
    connector = load_connector(setup["connector"], "the runtime's Connector")
    setup_logging(connector.spec.runtime.log_level)
    decoder = worker_decoder(connector)
    try:
        process = build_processor(
            connector, udf_source=setup["udfSource"], udf_in_worker=True, decoder=decoder
        )
    except Exception as error:  # the spec error's text names the field
        write_frame(conversation_out, orjson.dumps({"error": str(error)}))
        return 1
    write_frame(conversation_out, b'{"ready":true}')
    registry = decoder.registry if decoder is not None else None
    while True:
        frame = read_frame(conversation_in)
        if frame is None:
            return 0  # the runtime closed the conversation
        (size,) = LENGTH.unpack_from(frame)
        schemas_end = LENGTH.size + size
        for fmt, schema_id, schema in pickle.loads(frame[LENGTH.size : schemas_end]):
            if registry is not None:
                registry.install(fmt, schema_id, schema, compiler_for(fmt))
        chunk = pickle.loads(frame[schemas_end:])
        write_frame(conversation_out, chunk_answer(process, chunk))


def worker_decoder(connector: Connector) -> RecordDecoder | None:
    """The worker's record decoder: schemas come from the runtime (``Registry.install``),
    never from the registry, whose credentials the worker does not hold; a record naming
    one it was not given fails in stage decode (``chunk_answer``)."""
    kafka = connector.spec.source.kafka
    if not needs_decoder(kafka):
        return None
    spec = kafka.schema_registry
    return RecordDecoder(kafka, Registry(spec, environ={}) if spec is not None else None)


_ONE_EVENT = b"\x00" + LENGTH.pack(1)


def chunk_answer(process: Callable[[Record], Any], chunk: list[tuple[Any, ...]]) -> bytes:
    """The answer for a chunk of records (their fields as tuples). Each event is encoded as
    soon as the UDF returns: a UDF that reuses and mutates the objects it returned cannot
    change an earlier answer.

    While every record produces exactly one event the events are only collected; the
    answer is then their lengths and their bytes (``ONE_EACH``), which the runtime reads
    without a step per record. The first record that does otherwise switches the chunk to
    an answer per record.

    Events are appended to one buffer as they are encoded and dropped at once: orjson
    makes each answer in a kilobyte buffer and shrinks it, which costs over a microsecond
    more per event while hundreds of them are kept alive."""
    events = bytearray()
    lengths: list[int] = []
    answers: list[bytes] | None = None
    non_str_keys = orjson.OPT_NON_STR_KEYS
    for fields in chunk:
        record = Record(*fields)
        try:
            processed = process(record)
        except SchemaNotCached as missing:  # the runtime gives every schema it checked
            processed = RecordFailure(
                "decode", f"{SCHEMA_NOT_FOUND}: the worker was not given {missing}"
            )
        if type(processed) is list and len(processed) == 1 and processed[0] is ENVELOPE:
            # Passed as read (a filter alone): the envelope written from the record's bytes,
            # as the runtime writes it for such records.
            processed = [orjson.Fragment(encode_envelope(record))]
        if answers is None:
            if type(processed) is list and len(processed) == 1:
                try:
                    event = exact_dumps(processed[0], non_str_keys)
                except TypeError:
                    pass  # _answer reports it as this record's failure
                else:
                    lengths.append(len(event))
                    events += event
                    continue
            answers = _one_event_answers(events, lengths)
        answers.append(_answer(processed))
    if answers is not None:
        return b"".join(answers)
    return ONE_EACH + struct.pack(f">{len(lengths)}I", *lengths) + events


def _one_event_answers(events: bytearray, lengths: list[int]) -> list[bytes]:
    """The events collected so far, as per-record answers of one event each."""
    answers = []
    start = 0
    for length in lengths:
        answers.append(_one_event(bytes(events[start : start + length])))
        start += length
    return answers


def _one_event(encoded: bytes) -> bytes:
    """A record's answer of exactly one event."""
    return _ONE_EVENT + LENGTH.pack(len(encoded)) + encoded


def _answer(processed: Any) -> bytes:
    if isinstance(processed, RecordFailure):
        return _failure(processed.stage, processed.reason)
    try:
        if len(processed) == 1:  # the common case, kept short
            return _one_event(exact_dumps(processed[0], orjson.OPT_NON_STR_KEYS))
        parts = [b"\x00", LENGTH.pack(len(processed))]
        for event in processed:
            encoded = exact_dumps(event, orjson.OPT_NON_STR_KEYS)
            parts += (LENGTH.pack(len(encoded)), encoded)
    except TypeError as error:
        return _failure(
            "transform", f"the UDF returned a value that is not JSON-serialisable: {error}"
        )
    return b"".join(parts)


def _failure(stage: str, reason: str) -> bytes:
    text = reason[:300].encode("utf-8", "replace")
    return b"\x01" + FAILURE.pack(STAGES.index(stage), len(text)) + text


if __name__ == "__main__":
    sys.exit(main())
