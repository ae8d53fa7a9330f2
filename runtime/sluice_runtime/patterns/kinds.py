"""The JSON kinds a matcher dispatches on, and the marker for a missing field.

Compiled matchers look up ``type(value)`` in a small table instead of running an
``isinstance`` chain per record; values of unusual Python types (a ``str`` subclass, a
tuple, a ``Mapping``) fall back to :func:`canonical_type` once per lookup.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

Check = Callable[[Any], bool]
Table = dict[type, Check]
NoneType: Final = type(None)


class Missing:
    """The value of a field the event does not have (distinct from JSON null)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = Missing()

# Every type a JSON parser produces, plus the missing marker: each table has all of them.
TABLE_TYPES: Final = (str, int, float, bool, NoneType, dict, list, Missing)


def canonical_type(value: object) -> type:
    """The table key for a value whose exact type is not in :data:`TABLE_TYPES`.

    ``bool`` is tested before ``int`` because ``True == 1`` in Python but not in JSON.
    Values that are not JSON-like at all are treated as missing: patterns cannot see them.
    """
    if isinstance(value, bool):
        return bool
    if isinstance(value, str):
        return str
    if isinstance(value, int | float):
        return float
    if value is None:
        return NoneType
    if isinstance(value, Mapping):
        return dict
    if isinstance(value, list | tuple):
        return list
    return Missing


def lookup(table: Table, value: object) -> Check:
    try:
        return table[type(value)]
    except KeyError:
        return table[canonical_type(value)]


def scalar_leaves(items: Iterable[Any]) -> list[Any]:
    """The leaf values of an event array: nested arrays flattened, objects left out
    (they are not leaves, so they take no part in leaf matching)."""
    found: list[Any] = []
    for item in items:
        kind = canonical_type(item)
        if kind is list:
            found.extend(scalar_leaves(item))
        elif kind is not dict and kind is not Missing:
            found.append(item)
    return found


def object_elements(items: Iterable[Any]) -> list[Any]:
    """The objects of an event array, nested arrays flattened."""
    found: list[Any] = []
    for item in items:
        kind = canonical_type(item)
        if kind is list:
            found.extend(object_elements(item))
        elif kind is dict:
            found.append(item)
    return found
