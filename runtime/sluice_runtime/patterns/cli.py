"""``sluice test-pattern --pattern P --event E``: does the event match the pattern?"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import orjson

from sluice_runtime.patterns.compile import compile_pattern, compile_patterns
from sluice_runtime.patterns.errors import PatternError


class _BadArgument(Exception):
    pass


def run_test_pattern(pattern_arg: str, event_arg: str) -> int:
    """Print ``{"match": true|false}`` and return 0, or print one line on stderr and return 2
    when the pattern or the event is invalid.

    Either argument may be JSON text or ``@path`` to read the JSON from a file. The pattern
    may also be an array of patterns (any of them matching is a match); the event is a
    record envelope object (``{"key": ..., "headers": {...}, "value": ...}``).
    """
    try:
        pattern = _load("pattern", pattern_arg)
        event = _load("event", event_arg)
        if not isinstance(event, dict):
            raise _BadArgument("event: must be a JSON object (the record envelope)")
        if isinstance(pattern, list):
            matches = compile_patterns(pattern, where="pattern")
        else:
            matches = compile_pattern(pattern, where="pattern")
    except (_BadArgument, PatternError) as error:
        print(f"sluice test-pattern: {_one_line(str(error))}", file=sys.stderr)
        return 2
    print(json.dumps({"match": matches(event)}))
    return 0


def _load(name: str, argument: str) -> Any:
    text: str | bytes = argument
    if argument.startswith("@"):
        try:
            text = Path(argument[1:]).read_bytes()
        except OSError as error:
            raise _BadArgument(f"{name}: cannot read {argument[1:]}: {error.strerror}") from None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as error:
        raise _BadArgument(f"{name}: invalid JSON: {error}") from None


def _one_line(text: str) -> str:
    return " ".join(text.split())
