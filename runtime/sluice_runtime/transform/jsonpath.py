"""JSONPath, compiled once into direct lookups.

Supported: ``$`` (the whole document), ``.name``, ``['name']`` / ``["name"]``, ``[index]``
(negative counts from the end), ``[start:end:step]``, ``.*`` and ``[*]``, chained. Names
select in objects only, indexes and slices in arrays only; anything else selects nothing.

Not supported, with a clear error: recursive descent (``..``), filters (``[?(...)]``),
unions (``[a,b]``), scripts and functions. No JSONPath library is a dependency, and
reshaping one record rarely needs them; a UDF can do the rest.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sluice_runtime.errors import FieldPath, as_path
from sluice_runtime.transform.errors import TransformSpecError

SUPPORTED: Final = (
    "supported syntax: $, $.name, $['name'], $[0], $[-1], $[1:3], $.*, $[*] and chains of these"
)


class _Missing(enum.Enum):
    """Nothing selected: distinct from a selected JSON null."""

    MISSING = "MISSING"

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing.MISSING

Lookup = Callable[[Any], Any]

# Characters that end a dotted name: JSONPath syntax, quotes, whitespace and operators
# (so that "$.a==1" or "$.length()" fail loudly instead of selecting an odd key).
_NAME = re.compile(r"""[^\s.\[\]*()?'"<>,=!&|\\]+""")
_SPACES = re.compile(r"\s*")
_NUMBERS = re.compile(
    r"(?P<start>-?\d+)?\s*(?:(?P<colon>:)\s*(?P<stop>-?\d+)?\s*(?::\s*(?P<step>-?\d+)?)?)?"
)
_ESCAPES: Final = {
    "\\": "\\",
    "'": "'",
    '"': '"',
    "/": "/",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
}


@dataclass(frozen=True)
class _Wildcard:
    pass


_Step = str | int | slice | _Wildcard


@dataclass(frozen=True, slots=True)
class JsonPath:
    """A compiled JSONPath.

    ``lookup(document)`` returns the selected value, or ``MISSING``. When ``multi`` (the path
    has a wildcard or a slice) it always returns a list of the matches, possibly empty.
    """

    expression: str
    multi: bool
    lookup: Lookup

    def select(self, document: Any) -> Any:
        """The selected value, with nothing selected as None."""
        value = self.lookup(document)
        return None if value is MISSING else value


def compile_jsonpath(expression: str, where: str | Sequence[str | int]) -> JsonPath:
    """Compile ``expression``; errors are TransformSpecError at the field ``where``."""
    steps = _Parser(expression, as_path(where)).parse()
    single = [s for s in steps if isinstance(s, str | int)]
    if len(single) == len(steps):
        return JsonPath(expression=expression, multi=False, lookup=_single_lookup(single))
    return JsonPath(expression=expression, multi=True, lookup=_multi_lookup(steps))


class _Parser:
    def __init__(self, expression: str, where: FieldPath) -> None:
        self.text = expression.strip()
        self.expression = expression
        self.where = where
        self.pos = 0

    def error(self, message: str) -> TransformSpecError:
        return TransformSpecError(
            self.where, f"invalid JSONPath {self.expression!r}: {message} at position {self.pos}"
        )

    def unsupported(self, what: str) -> TransformSpecError:
        return TransformSpecError(
            self.where,
            f"unsupported JSONPath {self.expression!r}: {what} not supported"
            f" ({SUPPORTED}; use a UDF for more)",
        )

    def parse(self) -> list[_Step]:
        text = self.text
        if not text.startswith("$"):
            raise self.error("must start with $")
        self.pos = 1
        steps: list[_Step] = []
        while self.pos < len(text):
            char = text[self.pos]
            if char == ".":
                steps.append(self.dotted())
            elif char == "[":
                steps.append(self.bracketed())
            elif char == "(":
                raise self.unsupported("functions are")
            else:
                raise self.error(f"unexpected {char!r}")
        return steps

    def dotted(self) -> _Step:
        text = self.text
        self.pos += 1
        if text.startswith(".", self.pos):
            raise self.unsupported("recursive descent (..) is")
        if text.startswith("*", self.pos):
            self.pos += 1
            return _Wildcard()
        match = _NAME.match(text, self.pos)
        if match is None:
            raise self.error("expected a name or * after '.'")
        self.pos = match.end()
        return match.group()

    def bracketed(self) -> _Step:
        text = self.text
        self.pos += 1
        self.skip_spaces()
        char = text[self.pos : self.pos + 1]
        step: _Step
        if char == "?":
            raise self.unsupported("filter expressions [?(...)] are")
        if char == "(":
            raise self.unsupported("script expressions [(...)] are")
        if char in ("'", '"'):
            step = self.quoted(char)
        elif char == "*":
            self.pos += 1
            step = _Wildcard()
        else:
            step = self.numbers()
        self.skip_spaces()
        if text.startswith(",", self.pos):
            raise self.unsupported("unions [a,b] are")
        if not text.startswith("]", self.pos):
            raise self.error("expected ']'")
        self.pos += 1
        return step

    def numbers(self) -> int | slice:
        match = _NUMBERS.match(self.text, self.pos)
        assert match is not None  # every group is optional, so it always matches
        if match.end() == self.pos:
            raise self.error("expected a quoted name, an index, a slice or * after '['")
        self.pos = match.end()
        start, stop, step = (
            None if g is None else int(g) for g in match.group("start", "stop", "step")
        )
        if match.group("colon") is None:
            assert start is not None
            return start
        if step == 0:
            raise self.error("slice step must not be 0")
        return slice(start, stop, step)

    def quoted(self, quote: str) -> str:
        text = self.text
        self.pos += 1
        chars: list[str] = []
        while self.pos < len(text):
            char = text[self.pos]
            if char == quote:
                self.pos += 1
                return "".join(chars)
            if char == "\\":
                chars.append(self.escape())
            else:
                chars.append(char)
                self.pos += 1
        raise self.error(f"unterminated string (missing {quote})")

    def escape(self) -> str:
        text = self.text
        code = text[self.pos + 1 : self.pos + 2]
        if code in _ESCAPES:
            self.pos += 2
            return _ESCAPES[code]
        hex_digits = text[self.pos + 2 : self.pos + 6]
        if code == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", hex_digits):
            self.pos += 6
            return chr(int(hex_digits, 16))
        raise self.error(f"invalid escape \\{code}")

    def skip_spaces(self) -> None:
        match = _SPACES.match(self.text, self.pos)
        assert match is not None
        self.pos = match.end()


def _single_lookup(steps: list[str | int]) -> Lookup:
    """A lookup for a path that selects at most one value.

    The common shapes get unrolled closures: the transform hot path is mostly these.
    MISSING is never a dict or list, so a miss falls through every later check.
    """
    if not steps:
        return _identity
    keys = [s for s in steps if isinstance(s, str)]
    if len(keys) == len(steps):
        if len(keys) == 1:
            (k1,) = keys

            def one_key(doc: Any) -> Any:
                return doc.get(k1, MISSING) if isinstance(doc, dict) else MISSING

            return one_key
        if len(keys) == 2:
            k1, k2 = keys

            def two_keys(doc: Any) -> Any:
                if isinstance(doc, dict):
                    value = doc.get(k1, MISSING)
                    if isinstance(value, dict):
                        return value.get(k2, MISSING)
                return MISSING

            return two_keys
        key_chain = tuple(keys)

        def many_keys(doc: Any) -> Any:
            value = doc
            for key in key_chain:
                if not isinstance(value, dict):
                    return MISSING
                value = value.get(key, MISSING)
            return value

        return many_keys
    chain = tuple(steps)

    def mixed(doc: Any) -> Any:
        value = doc
        for step in chain:
            if isinstance(step, str):
                if not isinstance(value, dict):
                    return MISSING
                value = value.get(step, MISSING)
            else:
                # Indexes select in arrays only: never a character of a string.
                if not isinstance(value, list):
                    return MISSING
                try:
                    value = value[step]
                except IndexError:
                    return MISSING
        return value

    return mixed


def _identity(doc: Any) -> Any:
    return doc


Expand = Callable[[Any, list[Any]], None]


def _expander(step: _Step) -> Expand:
    """Append what ``step`` selects in one value to a list of matches."""
    if isinstance(step, str):

        def key(value: Any, out: list[Any]) -> None:
            if isinstance(value, dict) and step in value:
                out.append(value[step])

        return key
    if isinstance(step, int):

        def index(value: Any, out: list[Any]) -> None:
            if isinstance(value, list) and -len(value) <= step < len(value):
                out.append(value[step])

        return index
    if isinstance(step, slice):

        def sliced(value: Any, out: list[Any]) -> None:
            if isinstance(value, list):
                out.extend(value[step])

        return sliced

    def wildcard(value: Any, out: list[Any]) -> None:
        if isinstance(value, dict):
            out.extend(value.values())
        elif isinstance(value, list):
            out.extend(value)

    return wildcard


def _multi_lookup(steps: list[_Step]) -> Lookup:
    expanders = tuple(_expander(s) for s in steps)

    def multi(doc: Any) -> list[Any]:
        matches = [doc]
        for expand in expanders:
            selected: list[Any] = []
            for match in matches:
                expand(match, selected)
            matches = selected
        return matches

    return multi
