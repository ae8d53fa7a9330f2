"""Integers beyond 64 bits keep their value in every path that parses or writes a record:
decoding for filters and transforms, templates, UDFs, the payload, the offline CLIs."""

from __future__ import annotations

import json
import textwrap
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluice_runtime import exactjson
from sluice_runtime.config import Template
from sluice_runtime.envelope import build_envelope, decode_bytes, is_json
from sluice_runtime.patterns import compile_pattern, run_test_pattern
from sluice_runtime.payload import build_request
from sluice_runtime.records import Event, Record
from sluice_runtime.transform import TransformContext, compile_template, compile_udf

TWO_64 = 2**64  # 18446744073709551616, the first integer orjson reads as a float
WIDE = [TWO_64, TWO_64 + 1, -(2**63) - 1, 10**30 + 7, -(10**40) - 3]
WITHIN = [2**64 - 1, -(2**63), 2**63, 1_732_700_000_000_000_000, 0, -1]


@pytest.mark.parametrize("number", WIDE + WITHIN)
def test_decoding_a_record_keeps_every_integer(number: int) -> None:
    value, encoding = decode_bytes(b'{"n": %d, "list": [%d]}' % (number, number))
    assert encoding == "json"
    assert value == {"n": number, "list": [number]}
    assert type(value["n"]) is int
    top, _ = decode_bytes(b"%d" % number)
    assert (top, type(top)) == (number, int)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"n": 18446744073709551617, "x": NaN}',  # orjson refuses NaN; so must the reparse
        b'["\\ud800", 18446744073709551617]',  # a lone surrogate: refused by orjson
        b"[18446744073709551617,]",
        b"1e400",
    ],
)
def test_what_orjson_refuses_stays_text(raw: bytes) -> None:
    assert decode_bytes(raw) == (raw.decode(), "text")


def test_long_digit_runs_that_are_not_wide_integers_parse_as_before() -> None:
    raw = b'{"id": "123456789012345678901234", "pi": 3.14159265358979323846264338, "e": 1e21}'
    assert decode_bytes(raw) == (orjson.loads(raw), "json")


def test_integers_orjson_cannot_hold_even_as_a_float_stay_text_as_in_pass_through() -> None:
    """orjson refuses integers beyond a double's range, and so does the pass-through path's
    JSON check: both paths agree that such a record is text."""
    widest = b"[" + b"9" * 308 + b"]"
    assert decode_bytes(widest) == ([int("9" * 308)], "json")
    beyond = b"[" + b"9" * 400 + b"]"
    assert decode_bytes(beyond) == (beyond.decode(), "text")
    assert not is_json(beyond)


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**62, max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(value=JSON_VALUES)
def test_loads_and_dumps_round_trip_exactly(value: Any) -> None:
    text = json.dumps(value).encode()
    parsed = exactjson.loads(text)
    assert parsed == value
    assert repr(parsed) == repr(value)  # no int became a float, nor the reverse
    assert json.loads(exactjson.dumps(value)) == value


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet='0123456789-.e[]{}",: ntrufalsN\\', max_size=40))
def test_loads_accepts_exactly_what_orjson_accepts(text: str) -> None:
    try:
        expected = orjson.loads(text)
    except orjson.JSONDecodeError:
        with pytest.raises(orjson.JSONDecodeError):
            exactjson.loads(text)
        return
    assert exactjson.loads(text) == expected or exactjson.loads(text) == json.loads(text)


def test_dumps_writes_wide_integers_in_keys_and_tuples_and_still_refuses_the_rest() -> None:
    written = exactjson.dumps(
        {"a": (TWO_64, [{"b": -(10**30)}]), TWO_64: 1}, orjson.OPT_NON_STR_KEYS
    )
    assert written == (
        b'{"a":[18446744073709551616,[{"b":-1000000000000000000000000000000}]],'
        b'"18446744073709551616":1}'
    )
    with pytest.raises(TypeError):
        exactjson.dumps({"a": {1, 2}})
    with pytest.raises(TypeError):
        exactjson.dumps([TWO_64, {1}])


def _record(value: bytes) -> Record:
    return Record("views", 0, 7, 1732700000000, b"k", value)


@pytest.mark.parametrize("fmt", ["cloudevents-batch", "json-array", "cloudevents-binary"])
def test_the_payload_writes_decoded_wide_integers_exactly(fmt: str) -> None:
    raw = b'{"id": 18446744073709551617, "neg": -9223372036854775809}'
    envelope = build_envelope(_record(raw))
    body = build_request([Event(_record(raw), envelope)], fmt, "/s").body
    assert b'"id":18446744073709551617' in body
    assert b'"neg":-9223372036854775809' in body


def test_a_pattern_compares_wide_integers_exactly() -> None:
    matches = compile_pattern({"value": {"id": [TWO_64]}})
    assert matches(build_envelope(_record(b'{"id": 18446744073709551616}')))
    assert not matches(build_envelope(_record(b'{"id": 18446744073709551617}')))
    above = compile_pattern({"value": {"id": [{"numeric": [">", TWO_64]}]}})
    assert above(build_envelope(_record(b'{"id": 18446744073709551617}')))
    assert not above(build_envelope(_record(b'{"id": 18446744073709551616}')))


def test_test_pattern_compares_wide_integers_exactly(capsys: pytest.CaptureFixture[str]) -> None:
    code = run_test_pattern(
        '{"value": {"id": [18446744073709551616]}}', '{"value": {"id": 18446744073709551617}}'
    )
    assert (code, json.loads(capsys.readouterr().out)) == (0, {"match": False})


def test_templates_carry_wide_integers_exactly() -> None:
    envelope = build_envelope(
        _record(b'{"id": 18446744073709551617, "ids": [-1e0, 10000000000000000000000]}')
    )
    as_json = compile_template(
        Template(template='{"id": <$.value.id>, "ids": <$.value.ids>, "text": "#<$.value.id>"}')
    )
    assert as_json(envelope) == {
        "id": 18446744073709551617,
        "ids": [-1.0, 10**22],
        "text": "#18446744073709551617",
    }
    as_text = compile_template(Template(template="id=<$.value.id>"))
    assert as_text(envelope) == "id=18446744073709551617"


def test_a_udf_sees_and_returns_wide_integers_exactly() -> None:
    run = compile_udf(
        textwrap.dedent("""
            def handle_message(event, context):
                return {"next": event["value"]["id"] + 1, "square": event["value"]["id"] ** 2}
        """),
        "handle_message",
        TransformContext(connector="c", namespace="n"),
    )
    envelope = build_envelope(_record(b'{"id": 18446744073709551617}'))
    assert run(envelope) == [{"next": TWO_64 + 2, "square": (TWO_64 + 1) ** 2}]
