"""Runs a Connector's decode → filter → transform chain in a worker process
(``udf_worker.py``): always for a UDF, and with ``spec.runtime.processing: worker``.

Lanes hand over chunks of records, not one record per round trip. Each chunk has a
deadline of ``transform.udf.timeout`` per record (``WORKER_TIMEOUT`` without a UDF). When
the worker overruns it, dies (an ``os._exit``, a crash, its memory limit) or answers
nonsense, it is killed and started again, and the chunk's records are run one at a time to
find the culprit: that record fails in stage ``transform`` (``decode`` without a UDF), the
others go on as usual (a UDF may see a record twice, as at-least-once allows).

Records go to the worker as read. The worker cannot ask the schema registry, so the
runtime fetches the schemas they name and the pool gives each worker, with the chunk that
first needs it, every schema it has not had yet.

The worker's environment holds no Secrets, and the runtime makes itself non-dumpable so
that, running as the same non-root user, the worker cannot read the runtime's environment
or memory through /proc either.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import pickle
import resource
import signal
import struct
import sys
from collections import deque
from typing import Any

import orjson

from sluice_runtime.config import Connector
from sluice_runtime.envelope import SIMDJSON_MAX, is_json, thread_parse
from sluice_runtime.errors import SpecError
from sluice_runtime.exactjson import dumps as exact_dumps
from sluice_runtime.processors import Processed
from sluice_runtime.records import JsonText, Record, RecordFailure, Stage
from sluice_runtime.schemas.registry import RegistrySchema
from sluice_runtime.udf_worker import FAILURE, HEADER, LENGTH, MAX_ANSWER, ONE_EACH, STAGES

log = logging.getLogger("sluice.udf")

STARTUP_TIMEOUT = 10.0  # seconds for the worker to import the UDF module
KILL_WAIT = 5.0  # seconds for a killed worker to be gone, pipes closed
# Without a UDF the worker runs only Sluice's own code: a record's deadline and the
# worker's address space are those a UDF gets by default.
WORKER_TIMEOUT = 5.0
WORKER_MEMORY = 512 * 2**20
# What the worker's environment keeps: enough to start Python, nothing that could be a
# credential (the operator puts Secrets into SLUICE_* variables).
_KEPT_ENV = ("PATH", "LANG", "LC_ALL", "PYTHONPATH", "TZ")


UDF_FIELD = ("spec", "transform", "udf")
PROCESSING_FIELD = ("spec", "runtime", "processing")
_NO_SCHEMAS = pickle.dumps([], protocol=pickle.HIGHEST_PROTOCOL)  # most chunks bring none


class UdfStartError(SpecError):
    """The UDF's worker could not start: the message says why, naming the field."""

    def __init__(self, problem: str) -> None:
        super().__init__(UDF_FIELD, problem)


class WorkerFailed(Exception):
    """The worker overran its deadline, died or answered something that is not an answer."""


def make_undumpable() -> None:
    """Keep processes of the same user (the UDF's worker) out of /proc/<pid>/environ and
    ptrace. Linux only; elsewhere the worker's clean environment is the protection."""
    if sys.platform != "linux":
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE, 0
    except (OSError, AttributeError):
        log.warning("Could not make the runtime non-dumpable; UDF workers may read /proc")


class _Worker:
    """One worker process. Chunks are pipelined: several may be sent before the first is
    answered (the worker answers in order), so the runtime encodes and sends the next
    chunk while the worker runs the UDF on this one."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        assert process.stdin is not None
        assert process.stdout is not None
        self.stdin = process.stdin
        self.stdout = process.stdout
        self.waiting: deque[asyncio.Future[bytes]] = deque()  # in the order sent
        self.queued = 0  # records sent and not yet answered
        self.failed: WorkerFailed | None = None
        self.schemas: set[tuple[str, int]] = set()  # the schemas this worker was given
        self._reader: asyncio.Task[None] | None = None

    def start_reading(self) -> None:
        self._reader = asyncio.create_task(self._read_answers(), name="udf-answers")

    async def _read_answers(self) -> None:
        while True:
            try:
                answer = await self.receive()
            except WorkerFailed as error:
                self.fail(error)
                return
            if not self.waiting:
                self.fail(WorkerFailed("it answered a chunk that was not sent"))
                return
            future = self.waiting.popleft()
            if not future.done():
                future.set_result(answer)

    def fail(self, error: WorkerFailed) -> None:
        """The worker is done for: every chunk waiting on it fails with ``error``."""
        if self.failed is None:
            self.failed = error
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_exception(error)
        # Even when the worker has exited: what its UDF started may still be running.
        _kill_group(self.process)

    async def send(self, payload: bytes) -> None:
        self.stdin.write(HEADER.pack(len(payload)) + payload)
        await self.stdin.drain()

    async def receive(self) -> bytes:
        try:
            head = await self.stdout.readexactly(HEADER.size)
            (length,) = HEADER.unpack(head)
            if length > MAX_ANSWER:
                raise WorkerFailed(f"its answer has {length} bytes, over {MAX_ANSWER}")
            return await self.stdout.readexactly(length)
        except asyncio.IncompleteReadError:
            code = await self._exit_code()
            raise WorkerFailed(f"its process ended (exit code {code})") from None

    async def _exit_code(self) -> int | None:
        try:
            return await asyncio.wait_for(self.process.wait(), 5)
        except TimeoutError:
            return None

    async def kill(self) -> None:
        self.fail(WorkerFailed("it was stopped"))
        if self._reader is not None:
            self._reader.cancel()
        try:
            await asyncio.wait_for(self.process.wait(), KILL_WAIT)
        except TimeoutError:
            # Waiting also waits for the pipes to close, and a process the UDF started in a
            # session of its own may hold them: the pool (and every lane) goes on without.
            log.warning("The UDF worker's pipes are still held by a process it started")
            self.stdin.close()


def _kill_group(process: asyncio.subprocess.Process) -> None:
    """Kill the worker and whatever its UDF started: the worker leads a process group of
    its own, and a child left alive would hold the worker's pipes open."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            process.kill()


class WorkerPool:
    """The runtime's worker process. ``process`` is safe to call from several lanes at
    once: their chunks are pipelined to the one worker process."""

    def __init__(self, connector: Connector, udf_source: str | None) -> None:
        udf = connector.spec.transform.udf if connector.spec.transform else None
        assert (udf is None) == (udf_source is None), "a UDF's source, and only a UDF's"
        self.connector = connector
        self.udf_source = udf_source
        self.timeout = udf.timeout if udf is not None else WORKER_TIMEOUT
        self.memory_limit = int(udf.memory_limit) if udf is not None else WORKER_MEMORY
        # Where a record that brings the worker down fails: in the UDF when there is one.
        self.culprit_stage: Stage = "transform" if udf is not None else "decode"
        self.schemas: dict[tuple[str, int], RegistrySchema] = {}
        self._worker: _Worker | None = None
        self._sending = asyncio.Lock()  # chunks are sent one after the other
        self._turn = asyncio.Lock()  # held while a lane runs records one at a time

    def add_schema(self, fmt: str, schema_id: int, schema: RegistrySchema) -> None:
        """A schema the worker's records may name, fetched by the runtime."""
        self.schemas[fmt, schema_id] = schema

    async def start(self) -> None:
        """Start the worker and wait until the UDF module is imported (UdfStartError if
        it cannot be, or takes longer than STARTUP_TIMEOUT)."""
        try:
            self._worker = await asyncio.wait_for(self._spawn(), STARTUP_TIMEOUT)
        except TimeoutError:
            if self.udf_source is None:
                raise SpecError(PROCESSING_FIELD, "the worker did not start in time") from None
            raise UdfStartError(
                f"the module did not finish importing within {STARTUP_TIMEOUT:.0f}s "
                "(code that runs at import must return)"
            ) from None
        except WorkerFailed as error:
            if self.udf_source is None:
                raise SpecError(PROCESSING_FIELD, f"the worker failed to start: {error}") from None
            raise UdfStartError(f"the worker failed to start: {error}") from None

    async def _spawn(self) -> _Worker:
        env = {name: os.environ[name] for name in _KEPT_ENV if name in os.environ}
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "sluice_runtime.udf_worker",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=env,
            limit=MAX_ANSWER + HEADER.size,
            start_new_session=True,  # a process group of its own: see _kill_group
        )
        if sys.platform == "linux":
            limit = (self.memory_limit, self.memory_limit)
            try:
                resource.prlimit(process.pid, resource.RLIMIT_AS, limit)
            except (OSError, ValueError) as error:
                log.warning("Could not limit the UDF worker's memory: %s", error)
        worker = _Worker(process)
        try:
            manifest = self.connector.model_dump(mode="json", by_alias=True, exclude_none=True)
            # exactjson: a pattern may compare with integers beyond 64 bits.
            setup = exact_dumps({"connector": manifest, "udfSource": self.udf_source})
            await worker.send(setup)
            hello = _json(await worker.receive())
        except BaseException:
            await worker.kill()
            raise
        if not isinstance(hello, dict) or hello.get("ready") is not True:
            await worker.kill()
            why = hello.get("error") if isinstance(hello, dict) else None
            if why:  # the worker's own SpecError, its field path in the text already
                raise SpecError((), str(why))
            raise UdfStartError("the worker did not start")
        worker.start_reading()
        return worker

    async def process(self, records: list[Record]) -> list[Processed]:
        """What each record produced (events, or its RecordFailure), in order."""
        try:
            return await self._run(records)
        except WorkerFailed as error:
            if len(records) > 1:
                log.warning(
                    "Worker failed on a chunk of %d records (%s); running them one by one",
                    len(records),
                    error,
                )
        # One record at a time, each alone in the worker (no chunk of another lane in
        # flight beside it), so a failure is that record's.
        async with self._turn:
            results: list[Processed] = []
            for record in records:
                try:
                    results += await self._run([record], alone=True)
                except WorkerFailed as error:
                    log.warning("Worker failed on record %s: %s", record.event_id, error)
                    stage = self.culprit_stage
                    name = "UDF worker" if stage == "transform" else "worker"
                    results.append(RecordFailure(stage, f"{name}: {error}"))
            return results

    async def _run(self, records: list[Record], alone: bool = False) -> list[Processed]:
        chunk = pickle.dumps(
            [
                (r.topic, r.partition, r.offset, r.timestamp, r.key, r.value, r.headers)
                for r in records
            ],
            protocol=pickle.HIGHEST_PROTOCOL,
        )
        if not alone:
            async with self._turn:  # a lane falling back to one record at a time goes first
                pass
        async with self._sending:
            worker = await self._current()
            if alone:
                while worker.waiting:  # let what is in flight finish (or fail) first
                    await asyncio.wait([worker.waiting[-1]])
                worker = await self._current()
            # Sent in order and read in order: a schema arrives before the records after it.
            schemas = _NO_SCHEMAS
            if len(worker.schemas) < len(self.schemas):
                given = [(*k, v) for k, v in self.schemas.items() if k not in worker.schemas]
                worker.schemas.update(self.schemas)
                schemas = pickle.dumps(given, protocol=pickle.HIGHEST_PROTOCOL)
            answered: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
            worker.waiting.append(answered)
            # The worker answers in order: this chunk's deadline covers those ahead of it.
            deadline = self.timeout * (worker.queued + len(records))
            worker.queued += len(records)
            try:
                await worker.send(LENGTH.pack(len(schemas)) + schemas + chunk)
            except (ConnectionError, BrokenPipeError):
                worker.fail(WorkerFailed("its process ended"))
        try:
            answer = await asyncio.wait_for(asyncio.shield(answered), deadline)
        except TimeoutError:
            worker.fail(WorkerFailed(f"took longer than {self.timeout:g}s a record"))
            answer = await answered  # raises the failure
        finally:
            worker.queued -= len(records)
        try:
            return _checked(answer, len(records))
        except WorkerFailed as error:
            worker.fail(error)  # a worker that answers nonsense is not trusted again
            raise

    async def _current(self) -> _Worker:
        """The worker to send to: a new one when the last has failed."""
        worker = self._worker
        if worker is not None and worker.failed is None:
            return worker
        if worker is not None:
            await worker.kill()
            self._worker = None
        try:
            self._worker = await asyncio.wait_for(self._spawn(), STARTUP_TIMEOUT)
        except (TimeoutError, WorkerFailed, UdfStartError) as error:
            # It started before with the same code: this is the machine, not the record.
            raise RuntimeError(f"could not restart the worker: {error!r}") from error
        return self._worker

    async def close(self) -> None:
        if self._worker is not None:
            await self._worker.kill()
            self._worker = None


def _json(frame: bytes) -> Any:
    try:
        return orjson.loads(frame)
    except orjson.JSONDecodeError:
        raise WorkerFailed("it answered with bytes that are not JSON") from None


def _checked(answer: bytes, count: int) -> list[Processed]:
    """The worker's answer, one result per record in the shape the lane expects, or
    WorkerFailed. Each event becomes a ``JsonText``: embedded in the request as it is,
    once it is known to be exactly one JSON document (so no event can smuggle
    others into the batch)."""
    if answer[:1] == ONE_EACH:
        return _one_each(answer, count)
    view = memoryview(answer)
    at = 0
    results: list[Processed] = []
    try:
        for _ in range(count):
            kind = view[at]
            at += 1
            if kind == 0:
                (events,) = LENGTH.unpack_from(view, at)
                at += LENGTH.size
                produced: list[Any] = []
                for _ in range(events):
                    (size,) = LENGTH.unpack_from(view, at)
                    at += LENGTH.size
                    encoded = answer[at : at + size]
                    at += size
                    if len(encoded) != size or not is_json(encoded):
                        raise WorkerFailed("it answered with an event that is not JSON")
                    produced.append(encoded)
                results.append(produced)
            elif kind == 1:
                stage, size = FAILURE.unpack_from(view, at)
                at += FAILURE.size
                reason = bytes(view[at : at + size]).decode("utf-8", "replace")
                at += size
                results.append(RecordFailure(STAGES[stage], reason[:300]))
            else:
                raise WorkerFailed("it answered with something that is not an answer")
    except (IndexError, struct.error):
        raise WorkerFailed("it answered with a truncated answer") from None
    if at != len(answer):
        raise WorkerFailed("it answered with more than one answer per record")
    return results


def _one_each(answer: bytes, count: int) -> list[Processed]:
    """``_checked`` for a ``ONE_EACH`` answer: one event per record, each checked to be
    one JSON document (the loop is written out: it runs for every record)."""
    at = 1 + LENGTH.size * count
    if len(answer) < at:
        raise WorkerFailed("it answered with a truncated answer")
    parse, limit = thread_parse(), SIMDJSON_MAX
    results: list[Processed] = []
    add = results.append
    for size in struct.unpack_from(f">{count}I", answer, 1):
        end = at + size
        encoded: JsonText = answer[at:end]
        at = end
        if len(encoded) != size:
            raise WorkerFailed("it answered with a truncated answer")
        try:
            if size > limit:
                raise ValueError
            parse(encoded)  # dropped at once, freeing the parser
        except (ValueError, RuntimeError):
            if not is_json(encoded):  # what simdjson refuses is asked again (see is_json)
                raise WorkerFailed("it answered with an event that is not JSON") from None
        add([encoded])
    if at != len(answer):
        raise WorkerFailed("it answered with more than one answer per record")
    return results
