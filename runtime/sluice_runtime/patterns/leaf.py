"""One leaf of a pattern (``"field": [ ...match values... ]``), validated and compiled into a
type-dispatch table: ``table[type(value)](value)`` says whether the event value matches.

All entries of a leaf are OR-ed, so they are merged per JSON kind: exact strings into one
frozenset, prefixes into one ``str.startswith`` tuple, and so on. A kind that no entry can
match gets a constant "no" without any work.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import methodcaller
from typing import Any, Final

from sluice_runtime.patterns.errors import InvalidPattern, Location
from sluice_runtime.patterns.kinds import (
    Check,
    Missing,
    NoneType,
    Table,
    lookup,
    scalar_leaves,
)
from sluice_runtime.patterns.operands import (
    Number,
    NumberTest,
    StringTest,
    anything_but_string_test,
    cidr_test,
    ignore_case_operand,
    is_number,
    numeric_test,
    show,
    wildcard_test,
)

# Kinds of present leaf values; numbers are keyed by float, ints share the handler.
SCALAR_KINDS: Final[frozenset[type]] = frozenset({str, float, bool, NoneType})


def compile_leaf(entries: list[Any], location: Location) -> Table:
    if not entries:
        raise InvalidPattern(location, None, "must list at least one value to match, not []")
    leaf = _Leaf()
    for index, entry in enumerate(entries):
        leaf.add(entry, (*location, index))
    return leaf.table()


def never(value: Any) -> bool:
    return False


def always(value: Any) -> bool:
    return True


# Hashable scalars only: a C-level "no" that is cheaper to call than a Python function.
_NEVER_SCALAR: Final[Check] = frozenset[Any]().__contains__


class _Leaf:
    """The entries of one leaf, merged per kind as they are validated."""

    def __init__(self) -> None:
        self.strings: set[str] = set()
        self.numbers: set[Number] = set()
        self.booleans: set[bool] = set()
        self.null = False
        self.prefixes: list[str] = []
        self.suffixes: list[str] = []
        self.ignore_case: set[str] = set()
        self.string_tests: list[StringTest] = []
        self.number_tests: list[NumberTest] = []
        self.always: set[type] = set()
        self.when_absent = False

    def add(self, entry: Any, location: Location) -> None:
        if entry is None:
            self.null = True
        elif isinstance(entry, bool):
            self.booleans.add(entry)
        elif isinstance(entry, str):
            self.strings.add(entry)
        elif isinstance(entry, int | float):
            if not is_number(entry):
                raise InvalidPattern(location, None, f"must be a finite number, not {show(entry)}")
            self.numbers.add(entry)
        elif isinstance(entry, dict):
            self.add_operator(entry, location)
        elif isinstance(entry, list):
            raise InvalidPattern(
                location, None, "must not be a nested array; list the values directly"
            )
        else:
            raise InvalidPattern(
                location,
                None,
                "must be a string, number, true, false, null or an operator object, "
                f"not {show(entry)}",
            )

    def add_operator(self, entry: dict[str, Any], location: Location) -> None:
        if len(entry) != 1:
            raise InvalidPattern(
                location,
                None,
                f"must hold exactly one operator, found {len(entry)}: {show(list(entry))}",
            )
        ((name, operand),) = entry.items()
        handler = _OPERATORS.get(name)
        if handler is None:
            raise InvalidPattern(
                location,
                None,
                f"has unknown operator {show(name)}; expected one of {', '.join(_OPERATORS)}",
                path=(*location, str(name)),
            )
        handler(self, operand, location)

    def add_prefix(self, operand: Any, location: Location) -> None:
        if isinstance(operand, str):
            self.prefixes.append(operand)
        else:
            lowered = ignore_case_operand(operand, location, "prefix")
            self.string_tests.append(lambda value: value.lower().startswith(lowered))

    def add_suffix(self, operand: Any, location: Location) -> None:
        if isinstance(operand, str):
            self.suffixes.append(operand)
        else:
            lowered = ignore_case_operand(operand, location, "suffix")
            self.string_tests.append(lambda value: value.lower().endswith(lowered))

    def add_equals_ignore_case(self, operand: Any, location: Location) -> None:
        if not isinstance(operand, str):
            raise InvalidPattern(
                location, "equals-ignore-case", f"needs a string, not {show(operand)}"
            )
        self.ignore_case.add(operand.lower())

    def add_wildcard(self, operand: Any, location: Location) -> None:
        self.string_tests.append(wildcard_test(operand, location, "wildcard"))

    def add_contains(self, operand: Any, location: Location) -> None:
        if not isinstance(operand, str):
            raise InvalidPattern(location, "contains", f"needs a string, not {show(operand)}")
        self.string_tests.append(methodcaller("__contains__", operand))

    def add_exists(self, operand: Any, location: Location) -> None:
        if not isinstance(operand, bool):
            raise InvalidPattern(location, "exists", f"needs true or false, not {show(operand)}")
        if operand:
            self.always.update(SCALAR_KINDS)
        else:
            self.when_absent = True

    def add_cidr(self, operand: Any, location: Location) -> None:
        self.string_tests.append(cidr_test(operand, location))

    def add_numeric(self, operand: Any, location: Location) -> None:
        test = numeric_test(operand, location)
        if isinstance(test, int | float):
            self.numbers.add(test)
        else:
            self.number_tests.append(test)

    def add_anything_but(self, operand: Any, location: Location) -> None:
        if isinstance(operand, dict):
            self.string_tests.append(anything_but_string_test(operand, location))
            self.always.update(SCALAR_KINDS - {str})
            return
        values = operand if isinstance(operand, list) else [operand]
        if values and all(isinstance(value, str) for value in values):
            excluded_strings = frozenset(values)
            self.string_tests.append(lambda value: value not in excluded_strings)
            self.always.update(SCALAR_KINDS - {str})
        elif values and all(is_number(value) for value in values):
            excluded_numbers = frozenset(values)
            self.number_tests.append(lambda value: value not in excluded_numbers)
            self.always.update(SCALAR_KINDS - {float})
        else:
            raise InvalidPattern(
                location,
                "anything-but",
                "needs a string, a number, a non-empty array of only strings or only numbers, "
                "or an object with one of prefix, suffix, equals-ignore-case, wildcard; "
                f"not {show(operand)}",
            )

    def table(self) -> Table:
        on_string = _any_of(self._string_checks())
        on_number = _any_of(self._number_checks())
        on_boolean: Check = (
            always
            if bool in self.always
            else frozenset(self.booleans).__contains__
            if self.booleans
            else _NEVER_SCALAR
        )
        on_null: Check = always if self.null or NoneType in self.always else _NEVER_SCALAR
        on_absent = always if self.when_absent else never
        table: Table = {
            str: on_string,
            int: on_number,
            float: on_number,
            bool: on_boolean,
            NoneType: on_null,
            dict: on_absent,
            Missing: on_absent,
        }
        table[list] = _leaf_array_check(table, self.when_absent)
        return table

    def _string_checks(self) -> list[Check]:
        if str in self.always:
            return [always]
        checks: list[Check] = []
        if self.strings:
            checks.append(frozenset(self.strings).__contains__)
        if self.prefixes:
            checks.append(methodcaller("startswith", tuple(self.prefixes)))
        if self.suffixes:
            checks.append(methodcaller("endswith", tuple(self.suffixes)))
        if self.ignore_case:
            lowered = frozenset(self.ignore_case)
            checks.append(lambda value: value.lower() in lowered)
        checks.extend(self.string_tests)
        return checks

    def _number_checks(self) -> list[Check]:
        if float in self.always:
            return [always]
        checks: list[Check] = []
        if self.numbers:
            # 300, 300.0 and 3e2 are equal and hash alike, so one set serves ints and floats.
            checks.append(frozenset(self.numbers).__contains__)
        checks.extend(self.number_tests)
        return checks


def _any_of(checks: list[Check]) -> Check:
    if not checks:
        return _NEVER_SCALAR
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        first, second = checks

        def either(value: Any) -> bool:
            return bool(first(value) or second(value))

        return either
    all_checks = tuple(checks)

    def any_check(value: Any) -> bool:
        # A plain loop: any() over a generator allocates on every call.
        for check in all_checks:  # noqa: SIM110
            if check(value):
                return True
        return False

    return any_check


def _leaf_array_check(table: Table, when_absent: bool) -> Check:
    """An event array matches a leaf when any of its leaf values does; with no leaf values
    at all (empty, or only objects) the field counts as absent."""

    def on_array(items: Any) -> bool:
        leaves = scalar_leaves(items)
        if not leaves:
            return when_absent
        return any(lookup(table, leaf)(leaf) for leaf in leaves)

    return on_array


_OPERATORS: Final[dict[str, Callable[[_Leaf, Any, Location], None]]] = {
    "prefix": _Leaf.add_prefix,
    "suffix": _Leaf.add_suffix,
    "equals-ignore-case": _Leaf.add_equals_ignore_case,
    "wildcard": _Leaf.add_wildcard,
    "anything-but": _Leaf.add_anything_but,
    "numeric": _Leaf.add_numeric,
    "cidr": _Leaf.add_cidr,
    "exists": _Leaf.add_exists,
    "contains": _Leaf.add_contains,
}
