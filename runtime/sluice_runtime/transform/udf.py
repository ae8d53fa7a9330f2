"""The UDF transform: Python ``handle_message(event, context)`` run on each record.

The function gets a fresh copy of the envelope and returns an event (any JSON value), a
list of events (fan-out; None items are dropped) or None (the record is dropped).
"""

from __future__ import annotations

import copy
import inspect
import logging
import os
import re
import sys
import traceback
import types
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

import orjson

from sluice_runtime import exactjson
from sluice_runtime.config import Udf
from sluice_runtime.contract import UDF_FILE_ENV
from sluice_runtime.errors import FieldPath, as_path, format_path
from sluice_runtime.transform.context import TransformContext
from sluice_runtime.transform.errors import RecordTransformError, TransformSpecError

"""Where the operator mounts the UDF's ConfigMap key in the runtime's pod."""

_FILENAME: Final = "<udf>"
_MAX_REASON: Final = 300


class UdfContext:
    """The ``context`` argument of a UDF: one per record."""

    __slots__ = ("connector", "logger", "namespace", "offset", "partition", "topic")

    def __init__(
        self,
        connector: str,
        namespace: str,
        topic: Any,
        partition: Any,
        offset: Any,
        logger: logging.Logger,
    ) -> None:
        self.connector = connector
        self.namespace = namespace
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.logger = logger

    def __repr__(self) -> str:
        return (
            f"UdfContext(connector={self.connector!r}, namespace={self.namespace!r},"
            f" topic={self.topic!r}, partition={self.partition!r}, offset={self.offset!r})"
        )


def load_udf_source(
    udf: Udf, base_dir: Path | None = None, where: str | Sequence[str | int] = "transform.udf"
) -> str:
    """The UDF's source: inline, from ``file`` (relative to ``base_dir``), or, for a
    ConfigMap, from the file ``$SLUICE_UDF_FILE`` where the operator mounts it."""
    at = as_path(where)
    if udf.source is not None:
        return udf.source
    if udf.file is not None:
        path = Path(udf.file)
        if base_dir is not None and not path.is_absolute():
            path = base_dir / path
        return _read(path, (*at, "file"))
    ref_path = (*at, "configMapRef")
    mounted = os.environ.get(UDF_FILE_ENV)
    if mounted:
        return _read(Path(mounted), ref_path, f" (${UDF_FILE_ENV})")
    ref = udf.config_map_ref
    name = f"{ref.name}/{ref.key}" if ref is not None else "?"
    raise TransformSpecError(
        ref_path,
        f"the ConfigMap {name} is only read in the cluster;"
        f" standalone, set {format_path((*at, 'file'))} or {format_path((*at, 'source'))}"
        f" (or ${UDF_FILE_ENV} to a file holding the source)",
    )


def _read(path: Path, where: FieldPath, via: str = "") -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as error:
        raise TransformSpecError(where, f"cannot read {path}{via}: {error.strerror}") from None
    except UnicodeDecodeError as error:
        raise TransformSpecError(where, f"{path}{via} is not UTF-8: {error.reason}") from None


def compile_udf(
    source: str,
    function: str,
    context: TransformContext,
    where: str | Sequence[str | int] = "transform.udf",
    *,
    in_worker: bool = False,
) -> Callable[[dict[str, Any]], list[Any]]:
    """Load the UDF module once (running its module code); returns the per-record
    transform. Checking a spec never calls this: see ``speccheck.check_udf_source``.

    ``in_worker``: running in the UDF's worker process, where each envelope is built for
    this call alone and the caller serialises the result at once (and reports what cannot
    be): the defensive copies below are not needed there."""
    handler = _load(source, function, context, as_path(where))
    logger = logging.getLogger(f"sluice.udf.{context.namespace}.{context.connector}")
    connector, namespace = context.connector, context.namespace
    # Exact: integers beyond 64 bits (in the record, or computed) survive the round trip.
    dumps, loads = exactjson.dumps, exactjson.loads

    if in_worker:

        def run_udf_in_worker(envelope: dict[str, Any]) -> list[Any]:
            try:
                result = handler(
                    envelope,
                    UdfContext(
                        connector,
                        namespace,
                        envelope["topic"],
                        envelope["partition"],
                        envelope["offset"],
                        logger,
                    ),
                )
            except (Exception, SystemExit) as error:  # a UDF's exit() must not stop it
                raise RecordTransformError(_reason(error, function)) from error
            if type(result) is dict:  # the common case first: one event
                return [result]
            if result is None:
                return []
            if not isinstance(result, (list, tuple)):  # the tuple form: faster than list | tuple
                return [result]
            return [event for event in result if event is not None]

        return run_udf_in_worker

    def run_udf(envelope: dict[str, Any]) -> list[Any]:
        udf_context = UdfContext(
            connector,
            namespace,
            envelope.get("topic"),
            envelope.get("partition"),
            envelope.get("offset"),
            logger,
        )
        try:
            result = handler(_fresh_copy(envelope), udf_context)
        except (Exception, SystemExit) as error:  # a UDF's exit() must not stop the runtime
            raise RecordTransformError(_reason(error, function)) from error
        if result is None:
            return []
        # The round trip checks the result and detaches it from the UDF's own objects, which
        # the UDF may reuse and mutate while this event waits in a batch.
        try:
            data = loads(dumps(result, option=orjson.OPT_NON_STR_KEYS))
        except (TypeError, ValueError) as error:
            raise RecordTransformError(
                f"{function} returned a value that is not JSON-serialisable: {_one_line(error)}"
            ) from None
        if isinstance(result, list | tuple):
            return [item for item in data if item is not None]
        return [data]

    return run_udf


def _load(
    source: str, function: str, context: TransformContext, where: FieldPath
) -> Callable[[Any, Any], Any]:
    code = compile_udf_source(source, where)

    # Registered in sys.modules because some code run at import needs its own module there
    # (dataclasses, for one); one name per Connector so that a reload replaces the old one.
    name = "sluice_udf_" + re.sub(r"\W", "_", f"{context.namespace}_{context.connector}")
    module = types.ModuleType(name)
    module.__file__ = _FILENAME
    sys.modules[name] = module
    try:
        exec(code, module.__dict__)
    except (Exception, SystemExit) as error:
        del sys.modules[name]
        line = _udf_frame(error)
        at = f"line {line.lineno}: " if line is not None else ""
        raise TransformSpecError(
            where, f"{at}exception at import: {type(error).__name__}: {_one_line(error)}"
        ) from None

    if function not in module.__dict__:
        raise TransformSpecError(where, f"no function {function}")
    handler = module.__dict__[function]
    if not callable(handler):
        raise TransformSpecError(
            where, f"{function} is not callable (it is a {type(handler).__name__})"
        )
    try:
        inspect.signature(handler).bind(None, None)
    except TypeError:
        raise TransformSpecError(
            where, f"{function} must accept two arguments (event, context)"
        ) from None
    except ValueError:  # no signature to inspect (some builtins): find out at call time
        pass
    return handler  # type: ignore[no-any-return]


def compile_udf_source(
    source: str, where: str | Sequence[str | int] = "transform.udf"
) -> types.CodeType:
    """The UDF's code object: parsed and compiled, never run (TransformSpecError naming the
    line when it does not compile)."""
    try:
        return compile(source, _FILENAME, "exec")
    except SyntaxError as error:
        at = f"line {error.lineno}: " if error.lineno is not None else ""
        raise TransformSpecError(
            as_path(where), f"{at}{type(error).__name__}: {error.msg}"
        ) from None
    except (ValueError, MemoryError, RecursionError) as error:
        # NUL bytes; source nested too deeply for the parser.
        raise TransformSpecError(
            as_path(where), f"does not compile: {type(error).__name__}: {_one_line(error)}"
        ) from None


def _fresh_copy(envelope: dict[str, Any]) -> Any:
    """A deep copy, so that a UDF mutating its event cannot change the record."""
    try:
        # An orjson round trip is several times faster than deepcopy for JSON data.
        return orjson.loads(orjson.dumps(envelope))
    except TypeError:  # e.g. an integer beyond 64 bits
        return copy.deepcopy(envelope)


def _udf_frame(error: BaseException) -> traceback.FrameSummary | None:
    """The innermost frame of the UDF's own code in the error's traceback."""
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == _FILENAME]
    return frames[-1] if frames else None


def _reason(error: BaseException, function: str) -> str:
    frame = _udf_frame(error)
    where = f" in {frame.name} (line {frame.lineno})" if frame is not None else f" in {function}"
    message = _one_line(error)
    text = f"{type(error).__name__}: {message}" if message else type(error).__name__
    return _truncate(text, _MAX_REASON - len(where)) + where


def _one_line(error: BaseException) -> str:
    return _truncate(" ".join(str(error).split()), _MAX_REASON)


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
