"""``sluice test-pattern``: JSON on stdout and exit 0, or one line on stderr and exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sluice_runtime.patterns import run_test_pattern

PATTERN = '{"value": {"device": [{"prefix": "ios"}], "amount": [{"numeric": [">", 0]}]}}'
MATCHING = '{"key": "user-17", "headers": {}, "value": {"device": "ios-17", "amount": 12.5}}'
NOT_MATCHING = '{"key": "user-17", "headers": {}, "value": {"device": "web", "amount": 12.5}}'


def run(pattern: str, event: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = run_test_pattern(pattern, event)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_match_prints_true(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(PATTERN, MATCHING, capsys)
    assert (code, out, err) == (0, '{"match": true}\n', "")


def test_no_match_prints_false_and_still_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(PATTERN, NOT_MATCHING, capsys)
    assert (code, out, err) == (0, '{"match": false}\n', "")
    assert json.loads(out) == {"match": False}


def test_arguments_can_be_read_from_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pattern_file = tmp_path / "pattern.json"
    event_file = tmp_path / "event.json"
    pattern_file.write_text(PATTERN, encoding="utf-8")
    event_file.write_text(MATCHING, encoding="utf-8")
    assert run(f"@{pattern_file}", f"@{event_file}", capsys) == (0, '{"match": true}\n', "")
    assert run(f"@{pattern_file}", NOT_MATCHING, capsys)[1] == '{"match": false}\n'
    assert run(PATTERN, f"@{event_file}", capsys)[1] == '{"match": true}\n'


def test_an_array_of_patterns_matches_when_any_does(capsys: pytest.CaptureFixture[str]) -> None:
    patterns = f'[{{"key": ["someone-else"]}}, {PATTERN}]'
    assert run(patterns, MATCHING, capsys)[:2] == (0, '{"match": true}\n')


def test_an_invalid_pattern_exits_2_naming_the_path(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run('{"value": {"amount": [{"numeric": [">", 5, "<", 1]}]}}', MATCHING, capsys)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert "pattern.value.amount[0]: numeric range is empty" in err


@pytest.mark.parametrize(
    ("pattern", "event", "reason"),
    [
        ("{not json", MATCHING, "pattern: invalid JSON"),
        (PATTERN, "{not json", "event: invalid JSON"),
        (PATTERN, '"a string"', "event: must be a JSON object"),
        ('"a string"', MATCHING, "pattern: must be a JSON object"),
        ("[]", MATCHING, "pattern: needs a non-empty array of patterns"),
        ('{"value": {"x": "y"}}', MATCHING, "pattern.value.x: must be an array"),
        (PATTERN, "", "event: invalid JSON"),
    ],
)
def test_invalid_input_exits_2_with_one_line(
    pattern: str, event: str, reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(pattern, event, capsys)
    assert code == 2
    assert out == ""
    assert err.startswith("sluice test-pattern: ")
    assert err.count("\n") == 1
    assert reason in err


def test_an_unreadable_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.json"
    code, out, err = run(f"@{missing}", MATCHING, capsys)
    assert code == 2
    assert out == ""
    assert f"pattern: cannot read {missing}" in err
    assert err.count("\n") == 1


def test_an_invalid_event_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    event_file = tmp_path / "event.json"
    event_file.write_text("{\n  broken\n", encoding="utf-8")
    code, _, err = run(PATTERN, f"@{event_file}", capsys)
    assert code == 2
    assert "event: invalid JSON" in err
    assert err.count("\n") == 1


def test_a_condition_named_twice_is_refused_not_dropped(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """JSON parsers keep the last of two equal keys: the prefix "x" would be dropped and
    the event below would match. event-ruler refuses such a pattern too."""
    pattern = '{"value": {"device": [{"prefix": "ios", "prefix": "web"}]}}'
    code, out, err = run(pattern, NOT_MATCHING, capsys)
    assert (code, out) == (2, "")
    assert err == "sluice test-pattern: pattern: the key 'prefix' appears twice in one object\n"


def test_a_pattern_deeper_than_a_manifest_may_hold_is_refused_with_a_message(
    capsys: pytest.CaptureFixture[str],
) -> None:
    pattern = '{"a": ' * 500 + "[1]" + "}" * 500
    code, out, err = run(pattern, MATCHING, capsys)
    assert (code, out) == (2, "")
    assert "pattern: is nested too deeply: more than 32 levels" in err


def test_an_event_too_deep_to_match_is_an_error_not_a_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    event = '{"value": {"a": ' + "[" * 995 + "1" + "]" * 995 + "}}"
    code, out, err = run('{"value": {"a": [1]}}', event, capsys)
    assert (code, out) == (2, "")
    assert err == "sluice test-pattern: event: nested too deeply to match\n"
