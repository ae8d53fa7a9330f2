"""The UDF worker: a child process that runs decode → filter → UDF for the runtime.

A UDF is user code. Run inside the runtime it could end the process (``os._exit``), freeze
it (an endless loop), or read the Kafka password and the sink's token from the
environment. Here it runs in a process of its own, started with an environment that holds
no Secrets, under a memory limit, and the runtime gives each chunk of records a deadline
(``udf_pool.py``).

The conversation, over the worker's stdin and stdout, one length-prefixed frame at a time:

    runtime → worker   JSON {"connector": manifest, "udfSource": text}
    worker  → runtime  JSON {"ready": true}  or  {"error": "transform.udf: ..."}
    runtime → worker   pickle: a chunk of records as tuples          (repeated)
    worker  → runtime  JSON: per record, a list of events to deliver, or
                       {"stage": ..., "reason": ...} when it failed

The runtime trusts nothing the worker says: its answers are JSON (never pickle), bounded
in size and checked in shape. The UDF's own prints go to stderr, not into the conversation.
"""

from __future__ import annotations

import os
import pickle
import struct
import sys
from typing import Any, BinaryIO

import orjson

HEADER = struct.Struct(">I")
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
    from sluice_runtime.records import Record

    hello = read_frame(conversation_in)
    if hello is None:
        return 1
    setup = orjson.loads(hello)
    connector = load_connector(setup["connector"], "the runtime's Connector")
    setup_logging(connector.spec.runtime.log_level)
    try:
        process = build_processor(connector, udf_source=setup["udfSource"], udf_in_worker=True)
    except Exception as error:  # the spec error's text names the field
        write_frame(conversation_out, orjson.dumps({"error": str(error)}))
        return 1
    write_frame(conversation_out, b'{"ready":true}')
    while True:
        frame = read_frame(conversation_in)
        if frame is None:
            return 0  # the runtime closed the conversation
        # Each record's answer is written out as soon as the UDF returns: a UDF that
        # reuses and mutates the objects it returned cannot change an earlier answer.
        answers: list[bytes] = []
        for fields in pickle.loads(frame):
            answers.append(_answer(process(Record(*fields))))
        write_frame(conversation_out, b"[" + b",".join(answers) + b"]")


def _answer(processed: Any) -> bytes:
    from sluice_runtime.records import RecordFailure

    if isinstance(processed, RecordFailure):
        return orjson.dumps({"stage": processed.stage, "reason": processed.reason})
    try:
        return orjson.dumps(processed, option=orjson.OPT_NON_STR_KEYS)
    except TypeError as error:
        reason = f"the UDF returned a value that is not JSON-serialisable: {error}"
        return orjson.dumps({"stage": "transform", "reason": reason[:300]})


if __name__ == "__main__":
    sys.exit(main())
