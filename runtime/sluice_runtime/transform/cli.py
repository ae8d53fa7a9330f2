"""``sluice test-transform``: run a Connector's filter and transform on one event, offline."""

from __future__ import annotations

import base64
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from sluice_runtime import exactjson
from sluice_runtime.config import Connector, load_connector_file
from sluice_runtime.errors import ManifestError
from sluice_runtime.schemas.wire import DecodeError
from sluice_runtime.transform.compiler import compile_transform
from sluice_runtime.transform.context import TransformContext
from sluice_runtime.transform.errors import RecordTransformError
from sluice_runtime.transform.udf import load_udf_source


class _UsageError(Exception):
    pass


def run_test_transform(
    connector_path: str,
    event_arg: str | None,
    record_bytes: RecordBytes | None = None,
) -> int:
    """Print ``{"filtered": true}`` or ``{"filtered": false, "events": [...]}``; returns 0.

    ``event_arg`` is JSON, or ``@file`` holding JSON: an envelope (missing fields get
    defaults) or, without a "value" key, the value itself. ``record_bytes`` are a record's
    key and value as Kafka holds them, decoded as source.kafka.keyFormat / valueFormat say
    (with schema files for registry formats) into the envelope's key and value. Errors: one
    line on stderr, 2.
    """
    try:
        connector = load_connector_file(connector_path)
        event = _read_event(event_arg) if event_arg is not None else {}
        if record_bytes is not None:
            event = _with_decoded_bytes(event, connector, record_bytes)
        elif event_arg is None:
            raise _UsageError("give --event, or the record's bytes with --value / --key")
        envelope = _envelope(event, connector.spec.source.kafka.topics)
        # Both are compiled before either runs, so a broken transform is reported even for
        # an event the filter drops.
        matches = _compile_filter(connector)
        transform = connector.spec.transform
        udf_source = None
        if transform is not None and transform.udf is not None:
            # A relative udf.file is relative to the manifest, wherever the CLI runs.
            udf_source = load_udf_source(transform.udf, Path(connector_path).parent)
        run = compile_transform(transform, TransformContext.for_connector(connector), udf_source)
        result: dict[str, Any]
        if matches is not None and not matches(envelope):
            result = {"filtered": True}
        else:
            result = {"filtered": False, "events": run(envelope)}
        output = exactjson.dumps(result, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)
    except RecordTransformError as error:
        return _fail(f"transform failed: {error.reason}")
    except DecodeError as error:
        return _fail(f"decode failed: {error.reason}")
    except ManifestError as error:
        return _fail(error.one_line())
    except (_UsageError, ValueError, TypeError, OSError, ImportError) as error:
        return _fail(" ".join(str(error).split()))  # the command promises one line
    print(output.decode())
    return 0


@dataclass(frozen=True)
class RecordBytes:
    """A record's key and value bytes (either may be absent) and their schema files."""

    value: bytes | None = None
    value_schema: Path | None = None
    key: bytes | None = None
    key_schema: Path | None = None


def read_bytes_arg(arg: str, option: str) -> bytes:
    """``@file`` (its bytes as they are) or base64 text."""
    if arg.startswith("@"):
        try:
            return Path(arg[1:]).read_bytes()
        except OSError as error:
            raise ValueError(f"{option}: cannot read {arg[1:]}: {error.strerror}") from None
    try:
        return base64.b64decode(arg, validate=True)
    except ValueError:
        raise ValueError(f"{option}: neither @file nor base64") from None


def _with_decoded_bytes(event: Any, connector: Connector, record: RecordBytes) -> dict[str, Any]:
    from sluice_runtime.schemas.offline import decode_offline

    if not isinstance(event, dict) or "value" not in event:
        event = {} if event == {} else {"value": event}
    kafka = connector.spec.source.kafka
    decoded = dict(event)
    if record.value is not None:
        decoded["value"] = decode_offline(kafka.value_format, record.value, record.value_schema)
    if record.key is not None:
        decoded["key"] = decode_offline(kafka.key_format, record.key, record.key_schema)
    return decoded


def _fail(message: str) -> int:
    print(f"test-transform: {message}", file=sys.stderr)
    return 2


def _read_event(event_arg: str) -> Any:
    text: str | bytes = event_arg
    origin = "--event"
    if event_arg.startswith("@"):
        origin = event_arg[1:]
        try:
            text = Path(origin).read_bytes()
        except OSError as error:
            raise _UsageError(f"--event: cannot read {origin}: {error.strerror}") from None
    try:
        return exactjson.loads(text)
    except orjson.JSONDecodeError as error:
        raise _UsageError(f"{origin}: not valid JSON: {error}") from None


def _envelope(event: Any, topics: list[str]) -> dict[str, Any]:
    if not isinstance(event, dict) or "value" not in event:
        event = {"value": event}
    defaults: dict[str, Any] = {
        "topic": topics[0],
        "partition": 0,
        "offset": 0,
        "timestamp": int(time.time() * 1000),
        "key": None,
        "headers": {},
    }
    return {**defaults, **event}


def _compile_filter(connector: Connector) -> Callable[[Any], bool] | None:
    spec = connector.spec.filter
    if spec is None:
        return None
    # Imported here: only Connectors with a filter need the pattern compiler.
    from sluice_runtime.patterns import compile_pattern, compile_patterns

    if spec.pattern is not None:
        return compile_pattern(spec.pattern, "filter.pattern")
    return compile_patterns(spec.patterns or [], "filter.patterns")
