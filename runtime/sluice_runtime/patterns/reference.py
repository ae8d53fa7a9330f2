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
    return any(_match_nested(branch, event) for branch in _branches(pattern))


def reference_match_any(patterns: list[dict[str, Any]], event: Any) -> bool:
    return any(reference_match(pattern, event) for pattern in patterns)


# A pattern without $or: for each key, the constraints on its value, all of which must hold:
# ("leaf", entries) or ("object", Branch). One key may carry several after merging.
Branch = dict[str, list[tuple[str, Any]]]


def _branches(pattern: dict[str, Any]) -> list[Branch]:
    """The $or-free patterns an event may match instead, as EventBridge expands them: every
    $or becomes one branch per alternative, and the object patterns one key gets from
    several places are merged into one (matched against one array element)."""
    branches: list[Branch] = [{}]
    for key, sub_pattern in pattern.items():
        if key == "$or":
            options = [branch for option in sub_pattern for branch in _branches(option)]
        elif isinstance(sub_pattern, dict):
            options = [{key: [("object", branch)]} for branch in _branches(sub_pattern)]
        else:
            options = [{key: [("leaf", sub_pattern)]}]
        branches = [_merge(branch, option) for branch in branches for option in options]
    return branches


def _merge(first: Branch, second: Branch) -> Branch:
    merged = {key: list(constraints) for key, constraints in first.items()}
    for key, constraints in second.items():
        for kind, constraint in constraints:
            kept = merged.setdefault(key, [])
            objects = [index for index, (k, _) in enumerate(kept) if k == "object"]
            if kind == "object" and objects:
                kept[objects[0]] = ("object", _merge(kept[objects[0]][1], constraint))
            else:
                kept.append((kind, constraint))
    return merged


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


def _match_nested(branch: Branch, value: Any) -> bool:
    """A branch against an event value: an object, or any object of an array; anything
    else has no fields and is checked as an empty object."""
    if _kind(value) == "object":
        return _match_fields(branch, value)
    if _kind(value) == "array":
        objects = [item for item in _flatten(value) if _kind(item) == "object"]
        if objects:
            return any(_match_fields(branch, item) for item in objects)
    return _match_fields(branch, {})


def _match_fields(branch: Branch, event_object: Mapping[str, Any]) -> bool:
    for key, constraints in branch.items():
        value = event_object.get(key, _ABSENT)
        for kind, constraint in constraints:
            matched = (
                _match_nested(constraint, value)
                if kind == "object"
                else _match_leaf(constraint, value)
            )
            if not matched:
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
