from __future__ import annotations

import importlib
import json
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from sluice_runtime.transform import run_test_transform

CONNECTOR = """\
apiVersion: sluice.dev/v1alpha1
kind: Connector
metadata: {name: views, namespace: ads}
spec:
  source: {kafka: {bootstrapServers: ["127.0.0.1:1"], topics: [ad-views, other]}}
  sink: {uri: "http://127.0.0.1:1/"}
"""


def write_connector(tmp_path: Path, extra: str = "") -> str:
    path = tmp_path / "connector.yaml"
    path.write_text(CONNECTOR + textwrap.indent(textwrap.dedent(extra), "  "))
    return str(path)


def run(capsys: pytest.CaptureFixture[str], connector: str, event: str) -> tuple[int, Any, str]:
    code = run_test_transform(connector, event)
    out, err = capsys.readouterr()
    return code, json.loads(out) if out else None, err


def test_no_transform_prints_the_envelope_with_defaults(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = int(time.time() * 1000)
    code, out, err = run(capsys, write_connector(tmp_path), '{"amount": 3}')
    assert (code, err) == (0, "")
    assert out["filtered"] is False
    [event] = out["events"]
    assert before <= event.pop("timestamp") <= int(time.time() * 1000)
    assert event == {
        "topic": "ad-views",
        "partition": 0,
        "offset": 0,
        "key": None,
        "headers": {},
        "value": {"amount": 3},
    }


def test_an_envelope_keeps_its_fields(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    connector = write_connector(tmp_path, "transform: {jsonPath: '$'}\n")
    event = '{"topic": "other", "offset": 7, "key": "k", "value": [1, 2]}'
    code, out, _ = run(capsys, connector, event)
    assert code == 0
    [envelope] = out["events"]
    assert (envelope["topic"], envelope["offset"], envelope["key"], envelope["value"]) == (
        "other",
        7,
        "k",
        [1, 2],
    )


def test_template(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    connector = write_connector(
        tmp_path,
        """\
        transform:
          template:
            paths: {uid: $.value.user, name: $.value.name}
            template: '{"user": <uid>, "hello": "hi <name>", "topic": <$.topic>}'
        """,
    )
    code, out, _ = run(capsys, connector, '{"user": 17, "name": "A \\"q\\""}')
    assert code == 0
    assert out == {
        "filtered": False,
        "events": [{"user": 17, "hello": 'hi A "q"', "topic": "ad-views"}],
    }


def test_event_from_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    connector = write_connector(tmp_path, "transform: {jsonPath: $.value.n}\n")
    (tmp_path / "event.json").write_text('{"value": {"n": 5}, "partition": 2}')
    code, out, _ = run(capsys, connector, f"@{tmp_path / 'event.json'}")
    assert (code, out) == (0, {"filtered": False, "events": [5]})


def test_udf_file_relative_to_the_manifest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "udf.py").write_text(
        "def handle_message(event, context):\n"
        "    return [{'n': n, 'by': context.connector} for n in event['value']]\n"
    )
    connector = write_connector(tmp_path, "transform: {udf: {file: udf.py}}\n")
    monkeypatch.chdir("/")
    code, out, _ = run(capsys, connector, "[1, 2]")
    assert code == 0
    assert out["events"] == [{"n": 1, "by": "views"}, {"n": 2, "by": "views"}]


def test_udf_drop(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    connector = write_connector(
        tmp_path, "transform: {udf: {source: 'def handle_message(e, c): return None'}}\n"
    )
    assert run(capsys, connector, "{}")[:2] == (0, {"filtered": False, "events": []})


def test_udf_failure_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    connector = write_connector(
        tmp_path, "transform: {udf: {source: 'def handle_message(e, c): return 1 / 0'}}\n"
    )
    code, out, err = run(capsys, connector, "{}")
    assert (code, out) == (2, None)
    assert err == (
        "test-transform: transform failed: ZeroDivisionError: division by zero"
        " in handle_message (line 1)\n"
    )


@pytest.mark.parametrize(
    ("extra", "event", "message"),
    [
        ("", "{not json", "--event: not valid JSON"),
        ("", "@/nonexistent/event.json", "--event: cannot read /nonexistent/event.json"),
        ("transform: {jsonPath: '$..x'}\n", "{}", "transform.jsonPath: unsupported JSONPath"),
        ("transform: {udf: {source: 'def f(:'}}\n", "{}", "transform.udf: line 1: SyntaxError"),
        ("window: {maxMessages: 0}\n", "{}", "invalid Connector; spec.window.maxMessages"),
    ],
)
def test_errors_are_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: str, event: str, message: str
) -> None:
    code, out, err = run(capsys, write_connector(tmp_path, extra), event)
    assert (code, out) == (2, None)
    assert err.count("\n") == 1
    assert err.startswith("test-transform: ")
    assert message in err


def test_missing_manifest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, str(tmp_path / "nope.yaml"), "{}")
    assert code == 2
    assert "nope.yaml: cannot read" in err


def _patterns_ready() -> bool:
    try:
        module = importlib.import_module("sluice_runtime.patterns")
    except Exception:  # absent, or half-written by its author right now
        return False
    return hasattr(module, "compile_pattern") and hasattr(module, "compile_patterns")


@pytest.mark.skipif(not _patterns_ready(), reason="sluice_runtime.patterns is not there yet")
def test_filter(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    connector = write_connector(
        tmp_path,
        """\
        filter: {pattern: {value: {kind: [view]}}}
        transform: {jsonPath: $.value.kind}
        """,
    )
    assert run(capsys, connector, '{"kind": "click"}')[:2] == (0, {"filtered": True})
    assert run(capsys, connector, '{"kind": "view"}')[:2] == (
        0,
        {"filtered": False, "events": ["view"]},
    )
