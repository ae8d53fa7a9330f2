"""EventBridge ``wildcard`` values: ``*`` stands for any run of characters (also none),
``\\*`` for a literal star and ``\\\\`` for a literal backslash.

A wildcard is split once into its literal segments; matching then uses ``startswith``,
``endswith`` and ordered ``find`` calls. Leftmost placement of each middle segment is
always safe when ``*`` is the only metacharacter, so this runs in linear time, with no
regular-expression backtracking on hostile inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import methodcaller


class WildcardSyntaxError(ValueError):
    """The reason a wildcard value is invalid (the caller adds the path)."""


def split_wildcard(text: str) -> list[str]:
    """The literal segments between unescaped stars: ``a*b\\*c`` → ``["a", "b*c"]``.

    One segment means no star at all; an empty first or last segment means the value
    starts or ends with a star.
    """
    segments: list[str] = []
    current: list[str] = []
    index = 0
    previous_was_star = False
    while index < len(text):
        char = text[index]
        if char == "\\":
            escaped = text[index + 1 : index + 2]
            if escaped not in ("*", "\\"):
                raise WildcardSyntaxError(
                    f"may escape only '*' and '\\' with a backslash, at position {index}"
                )
            current.append(escaped)
            index += 2
            previous_was_star = False
            continue
        if char == "*":
            if previous_was_star:
                raise WildcardSyntaxError(
                    f"must not contain consecutive '*' characters, at position {index}"
                )
            segments.append("".join(current))
            current = []
            previous_was_star = True
        else:
            current.append(char)
            previous_was_star = False
        index += 1
    segments.append("".join(current))
    return segments


def wildcard_matcher(segments: list[str]) -> Callable[[str], bool]:
    """A string test for the segments returned by :func:`split_wildcard`."""
    if len(segments) == 1:
        literal = segments[0]
        return literal.__eq__
    head, *middle, tail = segments
    if not middle:
        if not head and not tail:
            return _any_string
        if not tail:
            return methodcaller("startswith", head)
        if not head:
            return methodcaller("endswith", tail)
    middle = [segment for segment in middle if segment]
    shortest = len(head) + len(tail) + sum(map(len, middle))
    head_length = len(head)
    tail_length = len(tail)

    def matches(value: str) -> bool:
        if len(value) < shortest or not value.startswith(head) or not value.endswith(tail):
            return False
        position = head_length
        end = len(value) - tail_length
        for segment in middle:
            found = value.find(segment, position, end)
            if found < 0:
                return False
            position = found + len(segment)
        return True

    return matches


def _any_string(value: str) -> bool:
    return True
