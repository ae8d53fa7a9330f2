"""The compiled matchers agree with the plain reference interpreter on generated patterns
and events drawn from a small vocabulary (so that matches are frequent)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sluice_runtime.patterns import compile_pattern, compile_patterns
from sluice_runtime.patterns.reference import reference_match, reference_match_any

SETTINGS = settings(max_examples=300, deadline=None, database=None)

KEYS = st.sampled_from(["a", "b", "c"])
STRINGS = st.one_of(
    st.sampled_from(["", "a", "ab", "A", "Ab", "ba", "a*b", "a\\b", "x.png", "X.PNG", "300"]),
    st.sampled_from(["10.0.0.1", "10.0.1.7", "2001:db8::1", "::1"]),
    st.text(alphabet="abA*.\\", max_size=4),
)
NUMBERS = st.one_of(
    st.sampled_from([0, 1, -1, 0.5, 5, 300, 300.0, 3e2]),
    st.integers(min_value=-5, max_value=5),
    st.floats(min_value=-10, max_value=10),
)
SCALARS = st.one_of(STRINGS, NUMBERS, st.booleans(), st.none())

EVENT_VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(KEYS, children, min_size=1, max_size=3),
    ),
    max_leaves=12,
)
# Mostly objects with most of the keys present, so that patterns often match.
EVENT_OBJECTS = st.dictionaries(KEYS, EVENT_VALUES, min_size=2, max_size=3)
EVENTS = st.one_of(EVENT_OBJECTS, EVENT_OBJECTS, EVENT_OBJECTS, EVENT_VALUES)

_WILDCARD_TOKENS = st.sampled_from(["a", "b", "A", ".", "*", "\\*", "\\\\"])


def _join_wildcard(tokens: list[str]) -> str:
    # Consecutive unescaped stars are invalid, so drop a star that follows a star.
    kept: list[str] = []
    for token in tokens:
        if not (token == "*" and kept and kept[-1] == "*"):
            kept.append(token)
    return "".join(kept)


WILDCARDS = st.lists(_WILDCARD_TOKENS, max_size=6).map(_join_wildcard)
NON_EMPTY_STRINGS = STRINGS.filter(bool)


def _one_or_many(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(values, st.lists(values, min_size=1, max_size=3))


def _numeric() -> st.SearchStrategy[list[Any]]:
    single = st.tuples(st.sampled_from(["=", "<", "<=", ">", ">="]), NUMBERS).map(list)
    ranged = st.tuples(
        st.sampled_from([">", ">="]),
        NUMBERS,
        st.sampled_from(["<", "<="]),
        st.floats(min_value=0.25, max_value=10),
    ).map(lambda parts: [parts[0], parts[1], parts[2], parts[1] + parts[3]])
    return st.one_of(single, ranged)


ANYTHING_BUT = st.one_of(
    STRINGS,
    NUMBERS,
    st.lists(STRINGS, min_size=1, max_size=3),
    st.lists(NUMBERS, min_size=1, max_size=3),
    st.fixed_dictionaries({"prefix": _one_or_many(NON_EMPTY_STRINGS)}),
    st.fixed_dictionaries({"suffix": _one_or_many(NON_EMPTY_STRINGS)}),
    st.fixed_dictionaries({"equals-ignore-case": _one_or_many(STRINGS)}),
    st.fixed_dictionaries({"wildcard": _one_or_many(WILDCARDS)}),
)


def _operator(name: str, operand: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({name: operand})


ENTRIES = st.one_of(
    SCALARS,
    _operator("prefix", STRINGS),
    _operator("prefix", st.fixed_dictionaries({"equals-ignore-case": STRINGS})),
    _operator("suffix", STRINGS),
    _operator("suffix", st.fixed_dictionaries({"equals-ignore-case": STRINGS})),
    _operator("equals-ignore-case", STRINGS),
    _operator("wildcard", WILDCARDS),
    _operator("contains", STRINGS),
    _operator("anything-but", ANYTHING_BUT),
    _operator("numeric", _numeric()),
    _operator("cidr", st.sampled_from(["10.0.0.0/24", "10.0.0.0/8", "2001:db8::/32", "::/0"])),
    _operator("exists", st.booleans()),
)
LEAVES = st.lists(ENTRIES, min_size=1, max_size=3)


def _objects(
    children: st.SearchStrategy[dict[str, Any]],
) -> st.SearchStrategy[dict[str, Any]]:
    fields = st.dictionaries(KEYS, st.one_of(LEAVES, children), min_size=1, max_size=3)
    with_or = st.tuples(
        st.dictionaries(KEYS, st.one_of(LEAVES, children), max_size=2),
        st.lists(children, min_size=2, max_size=3),
    ).map(lambda parts: {**parts[0], "$or": parts[1]})
    return st.one_of(fields, with_or)


PATTERNS = st.recursive(
    st.dictionaries(KEYS, LEAVES, min_size=1, max_size=2), _objects, max_leaves=6
)


def _literals(pattern: Any) -> list[Any]:
    """Every scalar written in a pattern, plus near misses, as material for events."""
    found: list[Any] = []
    if isinstance(pattern, dict):
        for sub_pattern in pattern.values():
            found.extend(_literals(sub_pattern))
    elif isinstance(pattern, list):
        for item in pattern:
            found.extend(_literals(item))
    elif isinstance(pattern, str):
        plain = pattern.replace("\\*", "*").replace("\\\\", "\\")
        found += [pattern, plain, plain.replace("*", "xy"), pattern.upper(), "z" + pattern]
        found += [pattern + "z", pattern.partition("/")[0].replace(".0", ".9")]
    elif isinstance(pattern, bool) or pattern is None:
        found.append(pattern)
    else:
        found += [pattern, pattern + 0.5, pattern - 1, float(pattern)]
    return found


@st.composite
def events_like(draw: st.DrawFn, pattern: dict[str, Any]) -> dict[str, Any]:
    """An event with the pattern's shape and each leaf's values taken from that leaf's
    literals: most fields present, leaves sometimes arrays, nested objects sometimes arrays
    of objects."""

    def object_for(object_pattern: dict[str, Any]) -> dict[str, Any]:
        event_object: dict[str, Any] = {}
        for key, sub_pattern in object_pattern.items():
            if key == "$or":
                for option in sub_pattern:
                    if draw(st.booleans()):
                        event_object.update(object_for(option))
            elif draw(st.integers(min_value=0, max_value=7)) == 0:
                continue
            elif isinstance(sub_pattern, dict):
                if draw(st.booleans()):
                    event_object[key] = object_for(sub_pattern)
                else:
                    event_object[key] = [object_for(sub_pattern) for _ in range(draw(ARRAY_SIZES))]
            else:
                literals = st.sampled_from(_literals(sub_pattern))
                if draw(st.booleans()):
                    event_object[key] = draw(literals)
                else:
                    event_object[key] = draw(st.lists(literals, max_size=3))
        return event_object

    return object_for(pattern)


ARRAY_SIZES = st.integers(min_value=0, max_value=3)


@SETTINGS
@given(pattern=PATTERNS, event=EVENTS)
def test_compiled_pattern_agrees_with_the_reference(pattern: dict[str, Any], event: Any) -> None:
    assert compile_pattern(pattern)(event) is reference_match(pattern, event)


@SETTINGS
@given(data=st.data(), pattern=PATTERNS)
def test_compiled_pattern_agrees_on_events_shaped_like_the_pattern(
    data: st.DataObject, pattern: dict[str, Any]
) -> None:
    event = data.draw(events_like(pattern))
    assert compile_pattern(pattern)(event) is reference_match(pattern, event)


@SETTINGS
@given(pattern=PATTERNS, events=st.lists(EVENT_OBJECTS, max_size=4))
def test_compiled_pattern_agrees_on_an_array_of_objects(
    pattern: dict[str, Any], events: list[dict[str, Any]]
) -> None:
    nested = {"value": pattern}
    event = {"value": events}
    assert compile_pattern(nested)(event) is reference_match(nested, event)


@SETTINGS
@given(patterns=st.lists(PATTERNS, min_size=1, max_size=3), event=EVENTS)
def test_compiled_patterns_agree_with_the_reference(
    patterns: list[dict[str, Any]], event: Any
) -> None:
    assert compile_patterns(patterns)(event) is reference_match_any(patterns, event)


@SETTINGS
@given(wildcard=WILDCARDS, value=st.text(alphabet="abA.*\\", max_size=8))
def test_wildcard_agrees_with_the_regular_expression_reference(wildcard: str, value: str) -> None:
    pattern = {"s": [{"wildcard": wildcard}]}
    event = {"s": value}
    assert compile_pattern(pattern)(event) is reference_match(pattern, event)
