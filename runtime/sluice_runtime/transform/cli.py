"""``sluice test-transform``: run a Connector's filter and transform on one event, offline."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from sluice_runtime.config import Connector, load_connector_file
from sluice_runtime.errors import ManifestError
from sluice_runtime.transform.compiler import compile_transform
from sluice_runtime.transform.context import TransformContext
from sluice_runtime.transform.errors import RecordTransformError
from sluice_runtime.transform.udf import load_udf_source


class _UsageError(Exception):
    pass


def run_test_transform(connector_path: str, event_arg: str) -> int:
    """Print ``{"filtered": true}`` or ``{"filtered": false, "events": [...]}``; returns 0.

    ``event_arg`` is JSON, or ``@file`` holding JSON: an envelope (missing fields get
    defaults) or, without a "value" key, the value itself. Errors: one line on stderr, 2.
    """
    try:
        connector = load_connector_file(connector_path)
        envelope = _envelope(_read_event(event_arg), connector.spec.source.kafka.topics)
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
        output = orjson.dumps(result, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)
    except RecordTransformError as error:
        return _fail(f"transform failed: {error.reason}")
    except ManifestError as error:
        return _fail(error.one_line())
    except (_UsageError, ValueError, TypeError, OSError, ImportError) as error:
        return _fail(" ".join(str(error).split()))  # the command promises one line
    print(output.decode())
    return 0


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
        return orjson.loads(text)
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
