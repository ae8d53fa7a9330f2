"""``sluice test-pattern --pattern P --event E``: does the event match the pattern?"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import orjson

from sluice_runtime import exactjson
from sluice_runtime.config import bounded_pattern
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
        pattern = _load("pattern", pattern_arg, refuse_duplicates=True)
        event = _load("event", event_arg)
        if not isinstance(event, dict):
            raise _BadArgument("event: must be a JSON object (the record envelope)")
        try:
            bounded_pattern(pattern)  # as a manifest's filter is: before anything recurses
        except ValueError as error:
            raise _BadArgument(f"pattern: {error}") from None
        if isinstance(pattern, list):
            matches = compile_patterns(pattern, where="pattern")
        else:
            matches = compile_pattern(pattern, where="pattern")
        try:
            matched = matches(event)
        except RecursionError:
            # What the runtime does with such a record: it fails in stage filter.
            raise _BadArgument("event: nested too deeply to match") from None
    except (_BadArgument, PatternError) as error:
        print(f"sluice test-pattern: {_one_line(str(error))}", file=sys.stderr)
        return 2
    print(json.dumps({"match": matched}))
    return 0


def _load(name: str, argument: str, refuse_duplicates: bool = False) -> Any:
    text: str | bytes = argument
    if argument.startswith("@"):
        try:
            text = Path(argument[1:]).read_bytes()
        except OSError as error:
            raise _BadArgument(f"{name}: cannot read {argument[1:]}: {error.strerror}") from None
    try:
        value = exactjson.loads(text)  # integers beyond 64 bits compare exactly
    except orjson.JSONDecodeError as error:
        raise _BadArgument(f"{name}: invalid JSON: {error}") from None
    if refuse_duplicates:
        # JSON parsers keep the last of two equal keys, which would drop a condition
        # without a word (event-ruler refuses such a pattern, as validate does a manifest).
        try:
            json.loads(text, object_pairs_hook=_unique_keys)
        except RecursionError:
            raise _BadArgument(f"{name}: nested too deeply") from None
        except _DuplicateKey as error:
            raise _BadArgument(
                f"{name}: the key {error.key!r} appears twice in one object"
            ) from None
    return value


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise _DuplicateKey(key)
        found[key] = value
    return found


def _one_line(text: str) -> str:
    return " ".join(text.split())
