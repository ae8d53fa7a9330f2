"""A deliberately plain interpreter of (already validated) event patterns.

Used only by tests, as an independent statement of the semantics that the compiled
matchers must agree with: it re-reads the pattern on every call, uses isinstance chains,
regular expressions for wildcards and ``ipaddress`` membership for CIDR blocks.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from ipaddress import ip_address, ip_network
from typing import Any

_ABSENT = object()


def reference_match(pattern: dict[str, Any], event: Any) -> bool:
    return _match_nested(pattern, event)


def reference_match_any(patterns: list[dict[str, Any]], event: Any) -> bool:
    return any(reference_match(pattern, event) for pattern in patterns)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "string"
    if isinstance(value, int | float):
        return "number"
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    return "absent"


def _flatten(values: Any) -> list[Any]:
    flat: list[Any] = []
    for value in values:
        if _kind(value) == "array":
            flat.extend(_flatten(value))
        else:
            flat.append(value)
    return flat


def _match_nested(pattern: dict[str, Any], value: Any) -> bool:
    """A pattern object against an event value: an object, or any object of an array;
    anything else has no fields and is checked as an empty object."""
    if _kind(value) == "object":
        return _match_fields(pattern, value)
    if _kind(value) == "array":
        objects = [item for item in _flatten(value) if _kind(item) == "object"]
        if objects:
            return any(_match_fields(pattern, item) for item in objects)
    return _match_fields(pattern, {})


def _match_fields(pattern: dict[str, Any], event_object: Mapping[str, Any]) -> bool:
    for key, sub_pattern in pattern.items():
        if key == "$or":
            if not any(_match_fields(option, event_object) for option in sub_pattern):
                return False
            continue
        value = event_object.get(key, _ABSENT)
        if isinstance(sub_pattern, dict):
            if not _match_nested(sub_pattern, value):
                return False
        elif not _match_leaf(sub_pattern, value):
            return False
    return True


def _match_leaf(entries: list[Any], value: Any) -> bool:
    if _kind(value) == "array":
        leaves = _flatten(value)
    elif value is _ABSENT:
        leaves = []
    else:
        leaves = [value]
    leaves = [leaf for leaf in leaves if _kind(leaf) not in ("object", "absent")]
    if not leaves:
        return {"exists": False} in entries
    return any(_entry_matches(entry, leaf) for entry in entries for leaf in leaves)


def _entry_matches(entry: Any, value: Any) -> bool:
    kind = _kind(value)
    if not isinstance(entry, dict):
        return _kind(entry) == kind and entry == value
    ((operator, operand),) = entry.items()
    if operator == "exists":
        return bool(operand)
    if operator == "anything-but":
        return _anything_but(operand, value)
    if operator == "numeric":
        return kind == "number" and _in_range(operand, value)
    if kind != "string":
        return False
    text: str = value
    if operator == "prefix":
        if isinstance(operand, dict):
            return text.lower().startswith(operand["equals-ignore-case"].lower())
        return text.startswith(operand)
    if operator == "suffix":
        if isinstance(operand, dict):
            return text.lower().endswith(operand["equals-ignore-case"].lower())
        return text.endswith(operand)
    if operator == "equals-ignore-case":
        return text.lower() == str(operand).lower()
    if operator == "wildcard":
        return _wildcard(operand, text)
    if operator == "contains":
        return operand in text
    if operator == "cidr":
        try:
            return ip_address(text) in ip_network(operand, strict=False)
        except ValueError:
            return False
    raise AssertionError(f"unknown operator {operator}")


def _anything_but(operand: Any, value: Any) -> bool:
    """Any leaf value except those described: values of another kind always qualify."""
    if isinstance(operand, dict):
        ((operator, inner),) = operand.items()
        if _kind(value) != "string":
            return True
        options = inner if isinstance(inner, list) else [inner]
        return not any(_entry_matches({operator: option}, value) for option in options)
    excluded = operand if isinstance(operand, list) else [operand]
    return not any(_entry_matches(option, value) for option in excluded)


def _in_range(operand: list[Any], value: float) -> bool:
    for index in range(0, len(operand), 2):
        comparison, bound = operand[index], operand[index + 1]
        holds = {
            "=": value == bound,
            "<": value < bound,
            "<=": value <= bound,
            ">": value > bound,
            ">=": value >= bound,
        }[comparison]
        if not holds:
            return False
    return True


def _wildcard(operand: str, value: str) -> bool:
    regex = ""
    escaped = False
    for char in operand:
        if escaped:
            regex += re.escape(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "*":
            regex += ".*"
        else:
            regex += re.escape(char)
    return re.fullmatch(regex, value, flags=re.DOTALL) is not None
