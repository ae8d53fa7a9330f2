"""Event patterns validated and compiled once into closures.

A pattern object becomes a function over one event object: for each field, look the
value up, pick the check for its JSON kind from a precomputed table, and stop at the first
failure. Evaluation never re-reads the pattern.

Arrays in the event: a leaf matches when any leaf value in the array does; a nested object
pattern matches when any single object in the array matches all of it (so fields are never
combined across different array elements, like EventBridge's array-consistent matching).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sluice_runtime.errors import as_path
from sluice_runtime.patterns.errors import InvalidPattern, Location, PatternError
from sluice_runtime.patterns.kinds import (
    MISSING,
    TABLE_TYPES,
    Check,
    Table,
    canonical_type,
    object_elements,
)
from sluice_runtime.patterns.leaf import compile_leaf
from sluice_runtime.patterns.operands import show

OR_KEY = "$or"


def compile_pattern(
    pattern: dict[str, Any], where: str | Sequence[str | int] = "filter.pattern"
) -> Callable[[Any], bool]:
    """Validate ``pattern`` and compile it into ``matches(event) -> bool``.

    Raises :class:`PatternError` naming the offending path under ``where`` (a field path,
    or a dotted name such as ``"spec.filter.pattern"``).
    """
    try:
        return _compile_root(pattern, ())
    except InvalidPattern as invalid:
        raise PatternError.from_invalid(as_path(where), invalid) from None


def compile_patterns(
    patterns: list[dict[str, Any]], where: str | Sequence[str | int] = "filter.patterns"
) -> Callable[[Any], bool]:
    """Several patterns; an event matches when any of them does."""
    if not isinstance(patterns, list) or not patterns:
        raise PatternError(
            as_path(where), (), None, f"needs a non-empty array of patterns, not {show(patterns)}"
        )
    try:
        matchers = tuple(_compile_root(pattern, (index,)) for index, pattern in enumerate(patterns))
    except InvalidPattern as invalid:
        raise PatternError.from_invalid(as_path(where), invalid) from None
    if len(matchers) == 1:
        return matchers[0]

    def matches_any(event: Any) -> bool:
        # A plain loop: any() over a generator allocates on every call.
        for matches in matchers:  # noqa: SIM110
            if matches(event):
                return True
        return False

    return matches_any


def _compile_root(pattern: Any, location: Location) -> Check:
    if not isinstance(pattern, dict):
        raise InvalidPattern(location, None, f"must be a JSON object, not {show(pattern)}")
    return _compile_object(pattern, location)


def _compile_object(pattern: dict[str, Any], location: Location) -> Check:
    if not pattern:
        raise InvalidPattern(location, None, "must have at least one field, not {}")
    fields: list[tuple[str, Table]] = []
    alternatives: list[tuple[Check, ...]] = []
    for key, sub_pattern in pattern.items():
        here = (*location, key)
        if key == OR_KEY:
            alternatives.append(_compile_or(sub_pattern, location))
        elif isinstance(sub_pattern, list):
            fields.append((key, compile_leaf(sub_pattern, here)))
        elif isinstance(sub_pattern, dict):
            fields.append((key, _object_field_table(_compile_object(sub_pattern, here))))
        else:
            raise InvalidPattern(
                here,
                None,
                f"must be an array of values to match or a nested object, not {show(sub_pattern)}",
            )
    return _object_matcher(tuple(fields), tuple(alternatives))


def _compile_or(alternatives: Any, location: Location) -> tuple[Check, ...]:
    if (
        not isinstance(alternatives, list)
        or len(alternatives) < 2
        or not all(isinstance(alternative, dict) for alternative in alternatives)
    ):
        raise InvalidPattern(
            location,
            OR_KEY,
            f"needs an array of at least 2 pattern objects, not {show(alternatives)}",
        )
    return tuple(
        _compile_object(alternative, (*location, OR_KEY, index))
        for index, alternative in enumerate(alternatives)
    )


def _object_matcher(
    fields: tuple[tuple[str, Table], ...], alternatives: tuple[tuple[Check, ...], ...]
) -> Check:
    """All fields match (AND) and, for each ``$or``, at least one alternative does.

    The matcher accepts any event value: an array matches when one of its objects does,
    and a value without fields (a string, a number, a missing field) matches exactly when
    the pattern matches an empty object, which only ``exists: false`` leaves can.
    """
    when_empty = False

    def on_non_object(value: Any) -> bool:
        if canonical_type(value) is not list:
            return when_empty
        objects = object_elements(value)
        if not objects:
            return when_empty
        return any(match_object(event_object) for event_object in objects)

    if len(fields) == 1 and not alternatives:
        # The common shape at the top ({"value": {...}}) skips the loop machinery.
        ((only_key, only_table),) = fields

        def match_object(event_object: Any) -> bool:
            if type(event_object) is not dict and not isinstance(event_object, Mapping):
                return on_non_object(event_object)
            value = event_object.get(only_key, MISSING)
            try:
                check = only_table[type(value)]
            except KeyError:
                check = only_table[canonical_type(value)]
            return check(value)

    else:

        def match_object(event_object: Any) -> bool:
            if type(event_object) is not dict and not isinstance(event_object, Mapping):
                return on_non_object(event_object)
            get = event_object.get
            for key, table in fields:
                value = get(key, MISSING)
                try:
                    check = table[type(value)]
                except KeyError:
                    check = table[canonical_type(value)]
                if not check(value):
                    return False
            for options in alternatives:
                for option in options:
                    if option(event_object):
                        break
                else:
                    return False
            return True

    when_empty = match_object({})
    return match_object


def _object_field_table(match_object: Check) -> Table:
    """Dispatch for a field whose pattern is a nested object: the object matcher itself
    handles every kind of value."""
    return dict.fromkeys(TABLE_TYPES, match_object)
