"""Operands of the value operators, validated and turned into tests on one event value.

Each function raises :class:`InvalidPattern` naming the operator when its operand is wrong.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from functools import partial
from ipaddress import ip_address, ip_network
from operator import ge, gt, le, lt
from typing import Any, Final

from sluice_runtime.patterns.errors import InvalidPattern, Location
from sluice_runtime.patterns.wildcard import WildcardSyntaxError, split_wildcard, wildcard_matcher

Number = int | float
StringTest = Callable[[str], bool]
NumberTest = Callable[[Number], bool]

_ANYTHING_BUT_STRING_OPERATORS: Final = ("prefix", "suffix", "equals-ignore-case", "wildcard")
# partial(compare, bound)(value) computes compare(bound, value): "value > bound" is lt(bound,
# value), hence the mirrored operators.
_LOWER_BOUNDS: Final = {">": lt, ">=": le}
_UPPER_BOUNDS: Final = {"<": gt, "<=": ge}
_COMPARISONS: Final = ("=", "<", "<=", ">", ">=")


def show(value: Any) -> str:
    """A value as the user wrote it in JSON, shortened for error messages."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def is_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return isinstance(value, int) or math.isfinite(value)


def ignore_case_operand(operand: Any, location: Location, operator: str) -> str:
    if (
        isinstance(operand, dict)
        and len(operand) == 1
        and isinstance(operand.get("equals-ignore-case"), str)
    ):
        return str(operand["equals-ignore-case"]).lower()
    raise InvalidPattern(
        location,
        operator,
        f'needs a string or {{"equals-ignore-case": "<string>"}}, not {show(operand)}',
    )


def wildcard_test(operand: Any, location: Location, operator: str) -> StringTest:
    if not isinstance(operand, str):
        raise InvalidPattern(location, operator, f"needs a string, not {show(operand)}")
    try:
        return wildcard_matcher(split_wildcard(operand))
    except WildcardSyntaxError as error:
        raise InvalidPattern(location, operator, f"{show(operand)} {error}") from None


def cidr_test(operand: Any, location: Location) -> StringTest:
    try:
        if not isinstance(operand, str) or operand.count("/") != 1:
            raise ValueError(operand)
        network = ip_network(operand, strict=False)
    except ValueError:
        raise InvalidPattern(
            location,
            "cidr",
            "needs an IPv4 or IPv6 network with a prefix length, such as 10.0.0.0/24 or "
            f"2001:db8::/32, not {show(operand)}",
        ) from None
    version = network.version
    mask = int(network.netmask)
    base = int(network.network_address)

    def in_network(value: str) -> bool:
        try:
            address = ip_address(value)
        except ValueError:
            return False
        return address.version == version and int(address) & mask == base

    return in_network


def numeric_test(operand: Any, location: Location) -> NumberTest | Number:
    """The test for a ``numeric`` operand, or the number itself for ``["=", n]``."""

    def invalid(detail: str) -> InvalidPattern:
        return InvalidPattern(location, "numeric", detail)

    if not isinstance(operand, list) or len(operand) not in (2, 4):
        raise invalid(
            'needs an array of one or two comparisons, such as [">", 0] or [">", 0, "<=", 5], '
            f"not {show(operand)}"
        )
    for index in range(0, len(operand), 2):
        comparison, bound = operand[index], operand[index + 1]
        if not isinstance(comparison, str) or comparison not in _COMPARISONS:
            raise invalid(
                f"has unknown comparison {show(comparison)}; use =, <, <=, > or >= "
                "followed by a number"
            )
        if not is_number(bound):
            raise invalid(f"needs a finite number after {show(comparison)}, not {show(bound)}")
    if len(operand) == 2:
        comparison, bound = operand
        if comparison == "=":
            return bound  # type: ignore[no-any-return]  # is_number checked it
        compare = _LOWER_BOUNDS.get(comparison) or _UPPER_BOUNDS[comparison]
        return partial(compare, bound)  # the comparison runs in C, no Python frame
    lower_comparison, lower, upper_comparison, upper = operand
    if lower_comparison not in _LOWER_BOUNDS or upper_comparison not in _UPPER_BOUNDS:
        raise invalid(
            "range needs a lower bound (> or >=) first and an upper bound (< or <=) second, "
            f"not {show(operand)}"
        )
    if not lower < upper:
        raise invalid(f"range is empty: the lower bound {lower} must be below the upper {upper}")
    return _range_test(lower, lower_comparison == ">=", upper, upper_comparison == "<=")


def _range_test(
    lower: Number, lower_inclusive: bool, upper: Number, upper_inclusive: bool
) -> NumberTest:
    if lower_inclusive and upper_inclusive:
        return lambda value: lower <= value <= upper
    if lower_inclusive:
        return lambda value: lower <= value < upper
    if upper_inclusive:
        return lambda value: lower < value <= upper
    return lambda value: lower < value < upper


def anything_but_string_test(operand: dict[str, Any], location: Location) -> StringTest:
    operator = "anything-but"
    if len(operand) != 1 or next(iter(operand)) not in _ANYTHING_BUT_STRING_OPERATORS:
        raise InvalidPattern(
            location,
            operator,
            f"object needs exactly one of {', '.join(_ANYTHING_BUT_STRING_OPERATORS)}, "
            f"not {show(list(operand))}",
        )
    ((name, inner),) = operand.items()
    nested = f"{operator}.{name}"
    values = inner if isinstance(inner, list) else [inner]
    if not values or not all(isinstance(value, str) for value in values):
        raise InvalidPattern(
            location, nested, f"needs a string or a non-empty array of strings, not {show(inner)}"
        )
    if name in ("prefix", "suffix") and "" in values:
        raise InvalidPattern(location, nested, "needs non-empty strings")
    if name == "prefix":
        prefixes = tuple(values)
        return lambda value: not value.startswith(prefixes)
    if name == "suffix":
        suffixes = tuple(values)
        return lambda value: not value.endswith(suffixes)
    if name == "equals-ignore-case":
        lowered = frozenset(value.lower() for value in values)
        return lambda value: value.lower() not in lowered
    tests = tuple(wildcard_test(value, location, nested) for value in values)
    return lambda value: not any(test(value) for test in tests)
