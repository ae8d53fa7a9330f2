"""Seeded generation of event patterns and events for the differential test against
event-ruler.

Patterns use every operator Sluice shares with EventBridge, nested objects and ``$or``;
events are built from each pattern's own literals and near misses (so that matches are
frequent), with leaves sometimes in arrays, nested objects sometimes arrays of objects whose
elements each satisfy only part of the pattern, fields sometimes missing, and numbers
written in several ways (``300``, ``300.0``, ``3e2``).

Everything generated stays within what both engines define the same way; the deliberate
differences and event-ruler's defects (docs/patterns.md) are left out here and checked
case by case instead: numbers a double cannot hold exactly only ever meet exact values, a
$or never repeats a field its branch already has, ``cidr`` blocks are neither /0 nor the
whole address, sit under their own key (never a number) and each case uses one address
family, exact values are never IP addresses, strings have no double quotes, ``exists:
false`` only appears in the top object, keys have no dots, and a case has either wildcards
starting with ``*`` or equals-ignore-case and non-ASCII text, and either empty strings or
numeric ranges.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any, Final

KEYS: Final = ("a", "b", "c")
# cidr appears only under this key, whose values are never numbers: event-ruler encodes
# addresses and numbers in one byte range, so some blocks match some numbers there.
IP_KEY: Final = "ip"
# Values of this key are integers a double may not hold (2**64 + 1); patterns match them
# only with exact values, the one comparison both engines define for them.
WIDE_KEY: Final = "w"
WIDE_NUMBERS: Final = (
    2**53 + 1,
    2**63,
    2**64 - 1,
    2**64,
    2**64 + 1,
    -(2**63) - 1,
    10**20,
    5,
    0,
)
STRING_ALPHABET: Final = ("a", "b", "A", "B", "é", "É", "*", "\\", "-", ".", " ")
WILDCARD_TOKENS: Final = ("a", "b", "A", "é", "-", "*", "\\*", "\\\\")
NUMBERS: Final = (-2, -1, -0.5, 0, 0.5, 1, 1.5, 2, 2.5, 3, 5, 10, 100, 301.8, 1e3)
NETWORKS: Final = (
    "10.0.0.0/8",
    "10.1.0.0/16",
    "192.168.1.0/24",
    "192.168.1.128/25",
    "192.168.1.77/24",  # host bits set
    "128.0.0.0/1",
    "2001:db8::/32",
    "2001:db8:1::/48",
    "fe80::/10",
    "::/1",
)
ADDRESSES: Final = (
    "10.0.0.1",
    "10.1.2.3",
    "10.255.255.255",
    "11.0.0.1",
    "192.168.1.5",
    "192.168.1.200",
    "192.168.2.1",
    "1.2.3.4",
    "2001:db8::1",
    "2001:DB8:1::5",
    "2001:0db8:0000:0000:0000:0000:0000:0001",
    "2001:db9::1",
    "fe80::1",
    "::1",
)


_EMPTY_OBJECT: Final = object()
_SCALAR: Final = object()
_ONE_ALTERNATIVE: Final = object()
# Leaf entries (or leaf replacements) that EventBridge and Sluice both refuse.
INVALID_LEAVES: Final = (
    _EMPTY_OBJECT,
    _SCALAR,
    _ONE_ALTERNATIVE,
    [1],
    {"prefix": 5},
    {"suffix": None},
    {"prefix": "a", "suffix": "b"},
    {"equals-ignore-case": 1},
    {"numeric": [">", "x"]},
    {"numeric": [">", 5, "<", 1]},
    {"numeric": ["<", 5, ">", 1]},
    {"numeric": ["!", 5]},
    {"numeric": 5},
    {"wildcard": "a**b"},
    {"wildcard": "a\\b"},
    {"wildcard": 3},
    {"anything-but": [1, "a"]},
    {"anything-but": {"prefix": ""}},
    {"anything-but": {"numeric": [">", 1]}},
    {"anything-but": True},
    {"exists": "yes"},
    {"cidr": "10.0.0.0/255.255.255.0"},
    {"cidr": "10.0.0.0/0.0.0.255"},
    {"cidr": "10.0.0.0"},
    {"cidr": "10.0.0.0/33"},
    {"cidr": "nonsense/8"},
    {"no-such-operator": 1},
)


@dataclass(frozen=True)
class RawNumber:
    """A number written exactly as ``text`` in the JSON document."""

    text: str


def to_json(value: Any) -> str:
    """JSON text, with :class:`RawNumber` written as is."""
    if isinstance(value, RawNumber):
        return value.text
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{to_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(to_json(item) for item in value) + "]"
    return json.dumps(value)


@dataclass
class Case:
    pattern: str
    events: list[str]


class Generator:
    """Patterns and events from one seed; the same seed gives the same cases."""

    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)
        self.ipv6 = False
        self.split = False
        self.leading_star = False
        self.empty_strings = False

    def networks(self) -> tuple[str, ...]:
        return tuple(n for n in NETWORKS if (":" in n) == self.ipv6)

    def addresses(self) -> tuple[str, ...]:
        return tuple(a for a in ADDRESSES if (":" in a) == self.ipv6)

    def cases(self, count: int, events_per_pattern: int) -> list[Case]:
        found: list[Case] = []
        while len(found) < count:
            # One address family per case: event-ruler compares addresses as hexadecimal
            # strings, so 10.0.0.0/8 matches a00::1 there (a documented difference).
            self.ipv6 = self.random.random() < 0.5
            # Next to a wildcard starting with *, event-ruler matches an equals-ignore-case
            # value, or a suffix with a non-ASCII character, at the wrong places (defects
            # listed in the docs): cases with such wildcards have neither.
            self.leading_star = self.random.random() < 0.5
            # An empty string value beside a numeric range stops event-ruler matching
            # other strings of the field (a listed defect): a case has one or the other.
            self.empty_strings = self.random.random() < 0.5
            pattern = self.shared_key_pattern() if self.random.random() < 0.15 else self.pattern(0)
            if _repeats_a_path(pattern):
                continue  # event-ruler keeps only one of them: a documented difference
            events = [
                to_json(self.event_for(pattern, split=index % 3 == 0))
                for index in range(events_per_pattern)
            ]
            if self.random.random() < 0.05:
                self.break_one_leaf(pattern)  # both engines must refuse it
            found.append(Case(to_json(pattern), events))
        return found

    # --- patterns ------------------------------------------------------------------------

    def pattern(self, depth: int, nesting: int = 0) -> dict[str, Any]:
        """An object pattern ``nesting`` objects below the event's top (where arrays of
        objects can occur), ``depth`` levels of nested objects and $or below the root."""
        r = self.random
        keys = r.sample(KEYS, r.randint(1, 2 if depth else 3))
        if depth == 0 and r.random() < 0.15:
            keys.append(WIDE_KEY)
        if r.random() < 0.2:
            keys.append(IP_KEY)
        pattern: dict[str, Any] = {}
        for key in keys:
            if key == WIDE_KEY:
                pattern[key] = self.wide_leaf()
            elif key == IP_KEY:
                pattern[key] = self.ip_leaf(absence=nesting == 0)
            elif depth < 2 and r.random() < 0.3:
                pattern[key] = self.pattern(depth + 1, nesting + 1)
            else:
                pattern[key] = self.leaf(absence=nesting == 0)
        if depth < 2 and r.random() < 0.3:
            nested = [key for key, sub in pattern.items() if isinstance(sub, dict)]
            alternatives = []
            for _ in range(r.randint(2, 3)):
                alternative = self.pattern(depth + 1, nesting)
                if nested and r.random() < 0.8:
                    # An alternative reaching into a sibling's object: the two parts must
                    # hold in one element of an array there.
                    alternative[r.choice(nested)] = self.pattern(depth + 1, nesting + 1)
                alternatives.append(alternative)
            pattern["$or"] = alternatives
        return pattern

    def shared_key_pattern(self) -> dict[str, Any]:
        """A field both beside a $or and inside one of its alternatives, as an object:
        ``{"a": {…}, "$or": [{"a": {…}}, {"b": […]}]}``; kept small so that events often
        satisfy every other part, leaving the shared field to decide."""
        r = self.random
        shared, other = r.sample(KEYS, 2)
        return {
            shared: self.pattern(2, 1),
            "$or": [{shared: self.pattern(2, 1)}, {other: self.leaf(absence=True)}],
        }

    def wide_leaf(self) -> list[Any]:
        r = self.random
        entries: list[Any] = r.sample(WIDE_NUMBERS, r.randint(1, 2))
        if r.random() < 0.2:
            entries.append({"exists": r.random() < 0.5})
        return entries

    def ip_leaf(self, absence: bool) -> list[Any]:
        r = self.random
        entries: list[Any] = [{"cidr": r.choice(self.networks())} for _ in range(r.randint(1, 2))]
        extra = r.choice(("none", "none", "string", "prefix", "anything-but", "exists"))
        if extra == "string":
            entries.append(self.string())
        elif extra == "prefix":
            entries.append({"prefix": self.string()})
        elif extra == "anything-but":
            entries.append({"anything-but": self.one_or_many(self.string)})
        elif extra == "exists":
            entries.append({"exists": r.random() < 0.5 if absence else True})
        return entries

    def leaf(self, absence: bool) -> list[Any]:
        return [self.entry(absence) for _ in range(self.random.choice((1, 1, 1, 2, 3)))]

    def entry(self, absence: bool) -> Any:
        """One leaf entry; ``exists: false`` only where ``absence`` (the top object: in
        arrays of objects event-ruler reads absence across elements, a documented
        difference)."""
        r = self.random
        kind = r.choices(
            (
                "string",
                "number",
                "literal",
                "prefix",
                "suffix",
                "equals-ignore-case",
                "wildcard",
                "anything-but",
                "numeric",
                "exists",
            ),
            weights=(10, 6, 3, 6, 6, 5, 6, 10, 8, 4),
        )[0]
        if kind == "string":
            return self.string() if self.empty_strings else self.non_empty_string()
        if kind == "number":
            return self.number()
        if kind == "literal":
            return r.choice((True, False, None))
        if kind in ("prefix", "suffix"):
            text = self.string()
            ignore_case = not self.leading_star and r.random() < 0.3
            return {kind: {"equals-ignore-case": text} if ignore_case else text}
        if kind == "equals-ignore-case" and not self.leading_star:
            # Never empty: an empty wildcard or equals-ignore-case next to a numeric range
            # stops event-ruler matching the field's exact strings (a listed defect).
            return {kind: self.non_empty_string()}
        if kind == "wildcard":
            return {kind: self.wildcard()}
        if kind == "anything-but":
            return {kind: self.anything_but()}
        if kind == "numeric":
            if self.empty_strings:
                return {kind: ["=", self.number()]}
            return {kind: self.numeric()}
        return {"exists": r.random() < 0.5 if absence else True}

    def string(self) -> str:
        r = self.random
        if r.random() < 0.3:
            text = r.choice(("", "a", "ab", "abc", "A", "Ab", "ba", "é", "x.png", "X.PNG"))
        else:
            text = "".join(r.choices(STRING_ALPHABET, k=r.randint(0, 4)))
        return text.replace("é", "e").replace("É", "E") if self.leading_star else text

    def non_empty_string(self) -> str:
        text = ""
        while not text:
            text = self.string()
        return text

    def number(self) -> Any:
        return self.random.choice(NUMBERS)

    def wildcard(self) -> str:
        tokens: list[str] = []
        for token in self.random.choices(WILDCARD_TOKENS, k=self.random.randint(1, 5)):
            if token == "*" and (tokens[-1:] == ["*"] or (not tokens and not self.leading_star)):
                continue
            tokens.append(token)
        return "".join(tokens) or "a"

    def one_or_many(self, make: Any) -> Any:
        if self.random.random() < 0.5:
            return make()
        return [make() for _ in range(self.random.randint(1, 3))]

    def anything_but(self) -> Any:
        r = self.random
        form = r.choice(
            ("string", "strings", "number", "numbers", "prefix", "suffix", "ignore-case", "wild")
        )
        if form == "string":
            return self.string()
        if form == "strings":
            return [self.string() for _ in range(r.randint(1, 3))]
        if form == "number":
            return self.number()
        if form == "numbers":
            return [self.number() for _ in range(r.randint(1, 3))]
        if form == "prefix":
            return {"prefix": self.one_or_many(self.non_empty_string)}
        if form == "suffix":
            return {"suffix": self.one_or_many(self.non_empty_string)}
        if form == "ignore-case" and not self.leading_star:
            return {"equals-ignore-case": self.one_or_many(self.string)}
        return {"wildcard": self.one_or_many(self.wildcard)}

    def numeric(self) -> list[Any]:
        r = self.random
        if r.random() < 0.6:
            return [r.choice(("=", "<", "<=", ">", ">=")), self.number()]
        low, high = sorted(r.sample(NUMBERS, 2))
        return [r.choice((">", ">=")), low, r.choice(("<", "<=")), high]

    def break_one_leaf(self, pattern: dict[str, Any]) -> None:
        """Make one leaf (or the object holding it) invalid in a way both engines refuse."""
        r = self.random
        holder, key = r.choice(list(_leaves(pattern)))
        broken = r.choice(INVALID_LEAVES)
        if broken is _EMPTY_OBJECT:
            holder[key] = {}
        elif broken is _SCALAR:
            holder[key] = "x"
        elif broken is _ONE_ALTERNATIVE:
            holder["$or"] = [{key: holder[key]}]
        else:
            holder[key] = [*holder[key], broken]

    # --- events --------------------------------------------------------------------------

    def event_for(self, pattern: dict[str, Any], split: bool = False) -> dict[str, Any]:
        """An event near ``pattern``; with ``split``, where several parts of the pattern
        name one object field, its value is an array whose elements each satisfy one
        part only (the shape where fields could wrongly combine across elements)."""
        self.split = split
        event = self.object_for(pattern)
        if self.random.random() < 0.2:
            event["z"] = self.scalar()
        return event

    def object_for(self, pattern: dict[str, Any]) -> dict[str, Any]:
        """An event object for ``pattern``: the fields of the pattern and of some of its
        $or alternatives, where a key several of them name gets values for all of them,
        together or (in an array of objects) spread over different elements."""
        r = self.random
        wanted: dict[str, list[Any]] = {}
        for key, sub_pattern in self.parts(pattern):
            wanted.setdefault(key, []).append(sub_pattern)
        event: dict[str, Any] = {}
        for key, sub_patterns in wanted.items():
            if r.random() < 0.1:
                continue  # missing
            objects = [sub for sub in sub_patterns if isinstance(sub, dict)]
            entries = [entry for sub in sub_patterns if isinstance(sub, list) for entry in sub]
            if key == WIDE_KEY:
                event[key] = self.leaf_value(lambda: r.choice(WIDE_NUMBERS))
            elif key == IP_KEY:
                event[key] = self.leaf_value(lambda entries=entries: self.ip_value(entries))
            elif objects and (not entries or r.random() < 0.7):
                event[key] = self.nested_value(objects)
            else:
                event[key] = self.leaf_value(lambda entries=entries: self.value_for(entries))
        return event

    def parts(self, pattern: dict[str, Any]) -> list[tuple[str, Any]]:
        """The (key, sub-pattern) pairs of the pattern and of some of its alternatives."""
        found: list[tuple[str, Any]] = []
        for key, sub_pattern in pattern.items():
            if key != "$or":
                found.append((key, sub_pattern))
                continue
            for option in sub_pattern:
                if self.random.random() < 0.6:
                    found.extend(self.parts(option))
        return found

    def nested_value(self, patterns: list[dict[str, Any]]) -> Any:
        r = self.random

        def element() -> dict[str, Any]:
            # One of the object patterns, or all of them in one object.
            if len(patterns) > 1 and r.random() < 0.6:
                return self.object_for(r.choice(patterns))
            merged: dict[str, Any] = {}
            for pattern in patterns:
                _deep_update(merged, self.object_for(pattern))
            return merged

        if self.split and len(patterns) > 1:
            return [self.object_for(pattern) for pattern in r.sample(patterns, len(patterns))]
        shape = r.random()
        if shape < (0.1 if len(patterns) > 1 else 0.4):
            return element()
        if shape < 0.9:
            # Elements built one by one, so each may satisfy a different part.
            return [element() for _ in range(r.randint(0, 3))]
        return self.scalar()

    def leaf_value(self, make: Any) -> Any:
        r = self.random
        shape = r.random()
        if shape < 0.6:
            return make()
        if shape < 0.9:
            return [make() for _ in range(r.randint(0, 3))]
        if shape < 0.95:
            return [[make()], make()]
        return {"x": make()}

    def value_for(self, entries: list[Any]) -> Any:
        r = self.random
        if r.random() < 0.15:
            return self.scalar()
        entry = r.choice(entries)
        if isinstance(entry, str):
            return r.choice((entry, entry.upper(), entry + "a", "a" + entry))
        if isinstance(entry, bool) or entry is None:
            return r.choice((entry, self.scalar()))
        if isinstance(entry, int | float):
            return self.number_text(r.choice((entry, entry, entry + 1, entry - 0.5)))
        ((operator, operand),) = entry.items()
        if operator in ("prefix", "suffix", "equals-ignore-case"):
            text = operand["equals-ignore-case"] if isinstance(operand, dict) else operand
            text = _flip_case(r, text) if r.random() < 0.4 else text
            more = self.string()
            return r.choice((text, text + more, more + text, more))
        if operator == "wildcard":
            return self.wildcard_instance(operand)
        if operator == "anything-but":
            return self.anything_but_value(operand)
        if operator == "numeric":
            bound = r.choice([item for item in operand if not isinstance(item, str)])
            return self.number_text(bound + r.choice((0, 0, -1, 1, -0.5, 0.5)))
        if operator == "cidr":
            return r.choice((*self.addresses(), operand.partition("/")[0]))
        return self.scalar()  # exists

    def ip_value(self, entries: list[Any]) -> Any:
        r = self.random
        if r.random() < 0.5:
            return r.choice(self.addresses())
        value = self.value_for(entries)
        return value if isinstance(value, str | bool) or value is None else self.string()

    def wildcard_instance(self, wildcard: str) -> str:
        r = self.random
        text = wildcard.replace("\\\\", "\x00").replace("\\*", "\x01")
        filled = "".join(self.string() if char == "*" else char for char in text)
        filled = filled.replace("\x00", "\\").replace("\x01", "*")
        return r.choice((filled, filled, _flip_case(r, filled), filled + "a"))

    def anything_but_value(self, operand: Any) -> Any:
        r = self.random
        if isinstance(operand, dict):
            ((operator, inner),) = operand.items()
            options = inner if isinstance(inner, list) else [inner]
            return self.value_for([{operator: r.choice(options)}])
        options = operand if isinstance(operand, list) else [operand]
        chosen = r.choice(options)
        if isinstance(chosen, str):
            return r.choice((chosen, self.string(), self.scalar()))
        return r.choice((self.number_text(chosen), self.number_text(chosen + 1), self.scalar()))

    def number_text(self, number: float) -> Any:
        """``number`` as one of the ways JSON can write it."""
        r = self.random
        if number == int(number) and abs(number) < 2**53:
            whole = int(number)
            return RawNumber(r.choice((str(whole), f"{whole}.0", f"{whole}e0", f"{whole * 10}e-1")))
        return RawNumber(r.choice((repr(float(number)), f"{float(number)!r}e0")))

    def scalar(self) -> Any:
        r = self.random
        return r.choice(
            (
                self.string(),
                self.number_text(r.choice(NUMBERS)),
                True,
                False,
                None,
                r.choice(self.addresses()),
            )
        )


def _flip_case(r: random.Random, text: str) -> str:
    return "".join(char.upper() if r.random() < 0.5 else char.lower() for char in text)


def _deep_update(target: dict[str, Any], source: dict[str, Any]) -> None:
    for key, value in source.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _deep_update(target[key], value)
        else:
            target[key] = value


def _paths(pattern: dict[str, Any], prefix: str) -> list[list[str]]:
    """The leaf paths of each branch event-ruler makes of the pattern ($or expanded)."""
    branches: list[list[str]] = [[]]
    for key, sub_pattern in pattern.items():
        if key == "$or":
            options = [p for option in sub_pattern for p in _paths(option, prefix)]
        elif isinstance(sub_pattern, dict):
            options = _paths(sub_pattern, f"{prefix}{key}.")
        else:
            options = [[f"{prefix}{key}"]]
        branches = [branch + option for branch in branches for option in options]
    return branches


def _leaves(pattern: dict[str, Any]) -> list[tuple[dict[str, Any], str]]:
    """(object, key) of every leaf in the pattern."""
    found: list[tuple[dict[str, Any], str]] = []
    for key, sub_pattern in pattern.items():
        if key == "$or":
            for option in sub_pattern:
                found.extend(_leaves(option))
        elif isinstance(sub_pattern, dict):
            found.extend(_leaves(sub_pattern))
        else:
            found.append((pattern, key))
    return found


def _repeats_a_path(pattern: dict[str, Any]) -> bool:
    return any(len(set(branch)) != len(branch) for branch in _paths(pattern, ""))
