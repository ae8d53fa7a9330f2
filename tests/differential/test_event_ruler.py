"""Sluice's event patterns against AWS's event-ruler, the matcher behind Amazon EventBridge.

Thousands of seeded, generated patterns and events (tests/differential/generate.py) go
through both; every verdict must agree, refusals included. The deliberate differences
and the event-ruler defects docs/patterns.md lists are checked one by one below, so the
page stays true of both engines.

Needs Java; scripts/event-ruler.sh fetches event-ruler from Maven Central and compiles
the harness once (``make infra`` does it ahead). The test fails, rather than skips, when
that cannot be done; SLUICE_SKIP_DIFFERENTIAL=1 skips it on purpose.
SLUICE_DIFFERENTIAL_SEED and SLUICE_DIFFERENTIAL_PATTERNS explore other cases.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.differential.generate import Generator
from tests.differential.harness import (
    Verdicts,
    event_ruler_classpath,
    run_event_ruler,
    run_sluice,
)

pytestmark = pytest.mark.differential

ROOT = Path(__file__).resolve().parents[2]
SEED = int(os.environ.get("SLUICE_DIFFERENTIAL_SEED", "20260512"))
PATTERNS = int(os.environ.get("SLUICE_DIFFERENTIAL_PATTERNS", "3000"))
EVENTS_PER_PATTERN = 10


@pytest.fixture(scope="module")
def classpath() -> Iterator[str]:
    if os.environ.get("SLUICE_SKIP_DIFFERENTIAL"):
        pytest.skip("SLUICE_SKIP_DIFFERENTIAL is set")
    try:
        yield event_ruler_classpath()
    except RuntimeError as error:
        pytest.fail(
            f"cannot run event-ruler for the differential test: {error} "
            "(set SLUICE_SKIP_DIFFERENTIAL=1 to skip it on purpose)",
            pytrace=False,
        )


def _show(verdicts: Verdicts) -> str:
    if verdicts.refused_because is not None:
        return f"refused ({verdicts.refused_because[:120]})"
    return "".join("1" if match else "0" for match in verdicts.matches)


def test_sluice_agrees_with_event_ruler_on_generated_cases(classpath: str) -> None:
    started = time.monotonic()
    cases = Generator(SEED).cases(PATTERNS, EVENTS_PER_PATTERN)
    ruler = run_event_ruler(classpath, [(case.pattern, case.events) for case in cases])
    disagreements: list[str] = []
    refused = compared = matched = 0
    for case, theirs in zip(cases, ruler, strict=True):
        ours = run_sluice(case.pattern, case.events)
        if theirs.refused_because is not None or ours.refused_because is not None:
            if theirs.refused_because is not None and ours.refused_because is not None:
                refused += 1
            else:
                disagreements.append(
                    f"pattern {case.pattern}: event-ruler {_show(theirs)}, Sluice {_show(ours)}"
                )
            continue
        for event, their_match, our_match in zip(
            case.events, theirs.matches, ours.matches, strict=True
        ):
            compared += 1
            matched += their_match
            if their_match != our_match:
                disagreements.append(
                    f"pattern {case.pattern} event {event}: "
                    f"event-ruler {their_match}, Sluice {our_match}"
                )
    elapsed = time.monotonic() - started
    print(
        f"differential (seed {SEED}): {len(cases)} patterns, {refused} refused by both, "
        f"{compared} pattern/event verdicts compared ({matched} matches), "
        f"{len(disagreements)} disagreements, {elapsed:.1f} s"
    )
    assert not disagreements, (
        f"{len(disagreements)} disagreements with event-ruler (seed {SEED}); the first:\n"
        + "\n".join(disagreements[:10])
    )
    # The generator must keep producing cases that exercise both outcomes.
    assert refused >= PATTERNS // 100
    assert compared // 20 <= matched <= compared // 2


@dataclass(frozen=True)
class Difference:
    """One documented difference: ``title`` is its heading in docs/patterns.md; the
    verdict strings are refused or one digit per event (1 = match)."""

    title: str
    pattern: object
    events: tuple[object, ...]
    event_ruler: str
    sluice: str


REFUSED = "refused"
W = 18446744073709551616  # 2**64

DIFFERENCES = (
    Difference(
        "Numbers a double cannot hold exactly",
        {"n": [{"numeric": [">", 0]}]},
        ({"n": W + 1}, {"n": 5}),
        "01",
        "11",
    ),
    Difference(
        "Numbers a double cannot hold exactly",
        {"n": [W]},
        ('{"n": 1.8446744073709551616e19}', {"n": W}, {"n": W + 1}),
        "010",
        "110",
    ),
    Difference(
        "Numbers a double cannot hold exactly",
        '{"n": [0.30000000000000001]}',
        ({"n": 0.3},),
        "0",
        "1",
    ),
    Difference(
        "Numbers a double cannot hold exactly",
        {"n": [{"anything-but": W}]},
        ({"n": 1},),
        REFUSED,
        "1",
    ),
    Difference(
        "The same field beside a $or and inside it",
        {"x": [1], "$or": [{"x": [2]}, {"y": [3]}]},
        ({"x": 2}, {"x": [1, 2]}, {"x": 1, "y": 3}),
        "111",
        "011",
    ),
    Difference(
        "A field that is both a value and an object, in nested arrays",
        {"b": [False], "$or": [{"b": {"c": [1]}}, {"z": [1]}]},
        ({"b": [[False], {"c": 1}]}, {"b": [False, {"c": 1}]}, {"b": [False, [{"c": 1}]]}),
        "011",
        "111",
    ),
    Difference(
        "Values a JSON parser cannot hold",
        {"b": ["x"]},
        ('{"a": 1e400, "b": "x"}', '{"a": "\\ud800", "b": "x"}', '{"a": 1, "b": "x"}'),
        "111",
        "001",
    ),
    Difference(
        "exists: false in an array of objects",
        {"c": {"b": [{"exists": False}]}},
        ({"c": [{}, {"b": 1}]}, {"c": [{}]}),
        "01",
        "11",
    ),
    Difference(
        "exists: false in an array of objects",  # with a field to anchor it, they agree
        {"c": {"b": [{"exists": False}], "a": [1]}},
        ({"c": [{"a": 1}, {"b": 1}]}, {"c": [{"a": 1, "b": 1}]}),
        "10",
        "10",
    ),
    Difference(
        "cidr: a block of one address",
        {"ip": [{"cidr": "10.0.0.7/32"}]},
        ({"ip": "10.0.0.7"},),
        REFUSED,
        "1",
    ),
    Difference(
        "cidr: IPv4 and IPv6 are kept apart",
        {"ip": [{"cidr": "10.0.0.0/8"}]},
        ({"ip": "a00::1"}, {"ip": "10.0.0.1"}),
        "11",
        "01",
    ),
    Difference(
        "cidr: IPv4 and IPv6 are kept apart",
        {"ip": [{"cidr": "::/1"}]},
        ({"ip": "1.2.3.4"}, {"ip": "::1"}),
        "11",
        "01",
    ),
    Difference(
        "cidr matches addresses only",
        {"ip": [{"cidr": "::/0"}]},
        ({"ip": 5}, {"ip": "::1"}),
        "11",
        "01",
    ),
    Difference(
        "Address spellings",
        {"ip": [{"cidr": "10.0.0.0/24"}]},
        ({"ip": "010.0.0.1"},),
        "1",
        "0",
    ),
    Difference(
        "Address spellings",
        {"ip": [{"cidr": "fe80::/10"}]},
        ({"ip": "fe80::1%eth0"},),
        "0",
        "1",
    ),
    Difference(
        "Address spellings",  # an IPv6 group of more than four digits
        {"ip": [{"cidr": "2001:db8::/32"}]},
        ({"ip": "2001:db8::00001"}, {"ip": "2001:db8::1"}),
        "11",
        "01",
    ),
    Difference(
        "Address spellings",  # a block written in IPv4-mapped form
        {"ip": [{"cidr": "::ffff:1.2.3.0/120"}]},
        ({"ip": "::ffff:1.2.3.4"},),
        REFUSED,
        "1",
    ),
    Difference(
        "Address spellings",  # a prefix length with a sign
        {"ip": [{"cidr": "10.0.0.0/+8"}]},
        ({"ip": "10.0.0.1"},),
        "1",
        REFUSED,
    ),
    Difference(
        "Exact values that are IP addresses",
        {"ip": ["2001:DB8::1"]},
        ({"ip": "2001:db8::1"}, {"ip": "2001:DB8::1"}),
        "11",
        "01",
    ),
    Difference(
        "Dots in field names",
        {"a.b": [1]},
        ({"a": {"b": 1}}, {"a.b": 1}),
        "11",
        "01",
    ),
    Difference(
        "equals-ignore-case beyond simple letters",
        {"s": [{"equals-ignore-case": "ß"}]},
        ({"s": "SS"}, {"s": "ẞ"}),
        "10",
        "01",
    ),
    Difference(
        "equals-ignore-case beyond simple letters",
        {"s": [{"equals-ignore-case": "k"}]},
        ({"s": "\u212a"},),  # KELVIN SIGN
        "0",
        "1",
    ),
    Difference(
        "Double quotes in prefix and suffix",
        {"s": [{"suffix": '"'}]},
        ({"s": ""}, {"s": 'a"'}),
        "11",
        "01",
    ),
    Difference(
        "Double quotes in prefix and suffix",
        {"s": [{"prefix": 'a"'}]},
        ({"s": "a"}, {"s": 'a"b'}),
        "11",
        "01",
    ),
    Difference(
        "contains",
        {"s": [{"contains": "b"}]},
        ({"s": "abc"},),
        REFUSED,
        "1",
    ),
    Difference(
        "Field names inside $or",
        {"$or": [{"prefix": ["x"]}, {"b": [2]}]},
        ({"prefix": "x"},),
        REFUSED,
        "1",
    ),
    Difference(
        "A $or that is not an array",
        {"$or": {"b": [2]}},
        ({"$or": {"b": 2}},),
        "1",
        REFUSED,
    ),
    Difference(
        "A wildcard starting with * beside equals-ignore-case",
        {"s": [{"wildcard": "*aba"}, {"equals-ignore-case": "abc"}]},
        ({"s": "xabc"}, {"s": "ABC"}),
        "11",
        "01",
    ),
    Difference(
        "A wildcard starting with * beside a suffix with non-ASCII characters",
        {"s": [{"wildcard": "*x"}, {"suffix": "é"}]},
        ({"s": "éq"}, {"s": "qé"}),
        "11",
        "01",
    ),
    Difference(
        "A wildcard starting with * beside a suffix with non-ASCII characters",
        {"s": [{"anything-but": {"wildcard": "*"}}, {"anything-but": {"suffix": "é"}}]},
        ({"s": "éx"}, {"s": "xé"}),
        "00",
        "10",
    ),
    Difference(
        "An empty string beside a numeric range",
        {"s": ["ab", {"numeric": ["<", 10]}, {"wildcard": ""}]},
        ({"s": "ab"}, {"s": 5}, {"s": ""}),
        "011",
        "111",
    ),
    Difference(
        "An empty string beside a numeric range",
        {"s": ["z", {"numeric": ["<", 5]}, ""]},
        ({"s": "z"}, {"s": 1}, {"s": ""}),
        "011",
        "111",
    ),
)


def _text(document: object) -> str:
    return document if isinstance(document, str) else json.dumps(document, ensure_ascii=False)


def _verdict(verdicts: Verdicts) -> str:
    if verdicts.refused_because is not None:
        return REFUSED
    return "".join("1" if match else "0" for match in verdicts.matches)


@pytest.fixture(scope="module")
def ruler_on_differences(classpath: str) -> list[Verdicts]:
    """Each case in a JVM of its own (about 0.3 s each): event-ruler's answers where it
    errs depend on what the same JVM matched before (after any of a dozen other cases
    here, "An empty string beside a numeric range" matches the string too)."""
    return [
        run_event_ruler(classpath, [(_text(d.pattern), [_text(event) for event in d.events])])[0]
        for d in DIFFERENCES
    ]


@pytest.mark.parametrize("index", range(len(DIFFERENCES)), ids=lambda i: DIFFERENCES[i].title)
def test_documented_difference_holds(index: int, ruler_on_differences: list[Verdicts]) -> None:
    difference = DIFFERENCES[index]
    events = [_text(event) for event in difference.events]
    assert _verdict(ruler_on_differences[index]) == difference.event_ruler
    verdicts = run_sluice(_text(difference.pattern), events, text_allowed=True)
    assert _verdict(verdicts) == difference.sluice


def test_the_docs_explain_every_difference() -> None:
    page = (ROOT / "docs" / "patterns.md").read_text()
    headings = {line.lstrip("#").strip() for line in page.splitlines() if line.startswith("###")}
    missing = sorted({d.title for d in DIFFERENCES} - headings)
    assert not missing, f"docs/patterns.md has no section for: {missing}"
