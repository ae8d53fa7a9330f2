"""Event patterns validated and compiled once into closures.

A pattern object becomes a function over one event object: for each field, look the
value up, pick the check for its JSON kind from a precomputed table, and stop at the first
failure. Evaluation never re-reads the pattern.

Arrays in the event: a leaf matches when any leaf value in the array does; a nested object
pattern matches when any single object in the array matches all of it (so fields are never
combined across different array elements, like EventBridge's array-consistent matching).
A ``$or`` that shares a key with its siblings is distributed first (:func:`_normalize`), so
that the shared key's parts are matched together, against one element.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
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
    return _compile_node(_normalize(_parse_object(pattern, location), _Budget(location)))


@dataclass(slots=True)
class _Node:
    """An object pattern, validated: its fields (a compiled leaf or a nested object, one
    entry per constraint, so a key may repeat after merging) and its ``$or`` groups, each
    needing one of its alternatives to match the same event object."""

    fields: list[tuple[str, Table | _Node]]
    groups: list[list[_Node]]


def _parse_object(pattern: dict[str, Any], location: Location) -> _Node:
    if not pattern:
        raise InvalidPattern(location, None, "must have at least one field, not {}")
    node = _Node([], [])
    for key, sub_pattern in pattern.items():
        here = (*location, key)
        if key == OR_KEY:
            node.groups.append(_parse_or(sub_pattern, location))
        elif isinstance(sub_pattern, list):
            node.fields.append((key, compile_leaf(sub_pattern, here)))
        elif isinstance(sub_pattern, dict):
            node.fields.append((key, _parse_object(sub_pattern, here)))
        else:
            raise InvalidPattern(
                here,
                None,
                f"must be an array of values to match or a nested object, not {show(sub_pattern)}",
            )
    return node


def _parse_or(alternatives: Any, location: Location) -> list[_Node]:
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
    return [
        _parse_object(alternative, (*location, OR_KEY, index))
        for index, alternative in enumerate(alternatives)
    ]


# $or alternatives that distributing over shared keys may create, for one pattern. EventBridge
# expands every $or this way; past this many, a pattern is refused rather than left to take
# seconds and megabytes to compile.
MAX_OR_COMBINATIONS = 1024


class _Budget:
    def __init__(self, location: Location) -> None:
        self.location = location
        self.left = MAX_OR_COMBINATIONS

    def spend(self, count: int) -> None:
        self.left -= count
        if self.left < 0:
            raise InvalidPattern(
                self.location,
                OR_KEY,
                f"combinations exceed {MAX_OR_COMBINATIONS}: a field that appears both beside "
                "a $or and inside its alternatives (or in two of them) multiplies them",
            )


def _normalize(node: _Node, budget: _Budget) -> _Node:
    """The same pattern, with every key at one level matched by one part of it only.

    Each ``$or`` alternative is matched against the same event object as its siblings; when
    both a sibling and an alternative reach into one key (``{"a": {"x": [1]}, "$or": [{"a":
    {"y": [2]}}, ...]}``), each could pick a different element of an array under ``a`` and
    fields would combine across array elements. So such a ``$or`` is distributed: ``F and
    (A or B)`` becomes ``(F+A) or (F+B)``, where ``+`` merges nested objects under one key
    into one object pattern, matched against one element, as EventBridge does.
    """
    fields: list[tuple[str, Table | _Node]] = []
    nested_at: dict[str, int] = {}
    for key, constraint in node.fields:
        if isinstance(constraint, _Node) and key in nested_at:
            index = nested_at[key]
            merged = fields[index][1]
            assert isinstance(merged, _Node)
            fields[index] = (key, _merge(merged, constraint))
        else:
            if isinstance(constraint, _Node):
                nested_at[key] = len(fields)
            fields.append((key, constraint))
    if node.groups and _shares_a_key(fields, node.groups):
        first, rest = node.groups[0], node.groups[1:]
        budget.spend(len(first))
        options: list[_Node] = []
        for alternative in first:
            combined = _normalize(_merge(_Node(fields, rest), alternative), budget)
            if not combined.fields and len(combined.groups) == 1:
                options.extend(combined.groups[0])  # (A or B) or C is A or B or C
            else:
                options.append(combined)
        return _Node([], [options])
    return _Node(
        [
            (key, _normalize(constraint, budget) if isinstance(constraint, _Node) else constraint)
            for key, constraint in fields
        ],
        [[_normalize(alternative, budget) for alternative in group] for group in node.groups],
    )


def _merge(first: _Node, second: _Node) -> _Node:
    return _Node(first.fields + second.fields, first.groups + second.groups)


def _keys_reached(node: _Node) -> set[str]:
    """The keys of the event object that ``node`` looks at, its ``$or`` groups included."""
    keys = {key for key, _ in node.fields}
    for group in node.groups:
        for alternative in group:
            keys |= _keys_reached(alternative)
    return keys


def _shares_a_key(fields: list[tuple[str, Table | _Node]], groups: list[list[_Node]]) -> bool:
    seen = {key for key, _ in fields}
    for group in groups:
        reached: set[str] = set()
        for alternative in group:
            reached |= _keys_reached(alternative)
        if reached & seen:
            return True
        seen |= reached
    return False


def _compile_node(node: _Node) -> Check:
    fields = tuple(
        (key, _object_field_table(_compile_node(c)) if isinstance(c, _Node) else c)
        for key, c in node.fields
    )
    alternatives = tuple(
        tuple(_compile_node(alternative) for alternative in group) for group in node.groups
    )
    return _object_matcher(fields, alternatives)


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
