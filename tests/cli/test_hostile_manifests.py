"""Manifests from whoever opens a pull request: `sluice validate` answers any file within
seconds as `file:line: field: problem`, never with a traceback, and `sluice run` refuses
the same files as fast."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.cli.test_cli import sluice

HEAD = (
    "apiVersion: sluice.dev/v1alpha1\n"
    "kind: Connector\n"
    "metadata: {name: c}\n"
    "spec:\n"
    "  source: {kafka: {bootstrapServers: ['k:9092'], topics: [t]}}\n"
    "  sink: {uri: 'http://f/'}\n"
)


def with_spec(**spec: Any) -> str:
    """A Connector manifest with ``spec`` merged in, as one JSON line (JSON is YAML)."""
    document: dict[str, Any] = {
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "Connector",
        "metadata": {"name": "c"},
        "spec": {
            "source": {"kafka": {"bootstrapServers": ["k:9092"], "topics": ["t"]}},
            "sink": {"uri": "http://f/"},
            **spec,
        },
    }
    return json.dumps(document)


def nested_pattern(depth: int) -> str:
    """A manifest whose pattern nests ``depth`` objects (written out: json.dumps would
    recurse as deep)."""
    pattern = '{"a": ' * depth + '{"leaf": ["x"]}' + "}" * depth
    return with_spec(filter={"pattern": "PATTERN"}).replace('"PATTERN"', pattern)


def alias_bomb(where: str) -> str:
    """The 1 KB "billion laughs": nine levels of nine aliases, 9^9 leaves once expanded."""
    lines = [HEAD, where]
    indent = " " * (len(where) - len(where.lstrip()) + 2)
    lines.append(f"{indent}l0: &l0 {{" + ", ".join(f"k{i}: [x]" for i in range(9)) + "}\n")
    for level in range(1, 9):
        items = ", ".join(f"k{i}: *l{level - 1}" for i in range(9))
        lines.append(f"{indent}l{level}: &l{level} {{{items}}}\n")
    return "".join(lines)


HOSTILE: dict[str, tuple[Callable[[], str | bytes], str]] = {
    "alias bomb in a pattern": (
        lambda: alias_bomb("  filter:\n    pattern:\n"),
        "aliases expand this file to more than",
    ),
    "alias bomb in labels": (
        lambda: alias_bomb("  runtime:\n    resources:\n"),
        "aliases expand this file to more than",
    ),
    "pattern nested 1,200 levels": (
        lambda: nested_pattern(1200),
        "nested more than 100 levels deep",
    ),
    "pattern nested 60 levels": (
        lambda: nested_pattern(60),
        "spec.filter.pattern: is nested too deeply: more than 32 levels",
    ),
    # libyaml stops at 1,000 levels itself, the pure-Python parser at our bound.
    "YAML nested 100,000 levels": (lambda: "[" * 100_000, "nest"),
    "file with 200,000 values": (
        lambda: with_spec(filter={"pattern": {"value": {"id": list(range(200_000))}}}),
        "more than 100000 nodes in one file",
    ),
    "pattern with 50,000 values": (
        lambda: with_spec(filter={"pattern": {"value": {"id": list(range(50_000))}}}),
        "spec.filter.pattern: is too large: more than 10000",
    ),
    "patterns adding up to too many values": (
        lambda: with_spec(filter={"patterns": [{"id": list(range(3000))}] * 4}),
        "spec.filter.patterns: is too large",
    ),
    "a 400-digit size": (
        lambda: HEAD + "  window: {maxBytes: " + "9" * 400 + "Ki}\n",
        "spec.window.maxBytes: size '999",
    ),
    "an infinite interval": (
        lambda: HEAD + "  window: {maxInterval: 1.0e+400}\n",
        "spec.window.maxInterval: a duration must be a finite number of seconds",
    ),
    "a 400-digit duration": (
        lambda: with_spec(sink={"uri": "http://f/", "timeout": "9" * 400 + "h"}),
        "spec.sink.timeout: a duration must be a finite number of seconds",
    ),
    "NaN requests per second": (
        lambda: HEAD + "  delivery: {rateLimit: {requestsPerSecond: .nan}}\n",
        "spec.delivery.rateLimit.requestsPerSecond: Input should be a finite number",
    ),
    "not UTF-8": (lambda: HEAD.encode() + b"  paused: \xff\xfe\n", "not UTF-8 text"),
    "binary": (lambda: bytes(range(256)) * 4, "not"),
    "a Python object tag": (
        lambda: HEAD + "  paused: !!python/object/apply:os.system ['true']\n",
        "not valid YAML",
    ),
    "too large": (lambda: "# " + "x" * (9 * 2**20) + "\n", "larger than 8 MiB"),
    "UDF nested beyond the compiler": (
        lambda: with_spec(transform={"udf": {"source": "x = " + "-" * 200_000 + "1\n"}}),
        "spec.transform.udf: does not compile",
    ),
    # YAML keeps the last of two equal keys: the first condition would be dropped unseen.
    "a filter condition named twice": (
        lambda: (
            HEAD
            + "  filter:\n    pattern:\n      value:\n        amount:\n"
            + "          - numeric: ['>', 100]\n            numeric: ['<', 0]\n"
        ),
        "c.yaml:12: the key 'numeric' appears twice in one mapping (first at line 11)",
    ),
    "UDF larger than a ConfigMap": (
        lambda: with_spec(transform={"udf": {"source": "#" * (2**20 + 1)}}),
        "spec.transform.udf.source: String should have at most 1048576 characters",
    ),
}

LINE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): (?P<message>.+)$")


@pytest.mark.parametrize("case", HOSTILE, ids=list(HOSTILE))
def test_validate_answers_hostile_files_in_seconds(tmp_path: Path, case: str) -> None:
    make, expected = HOSTILE[case]
    content = make()
    path = tmp_path / "c.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    started = time.monotonic()
    result = sluice("validate", str(path))
    elapsed = time.monotonic() - started
    assert elapsed < 10, f"validate took {elapsed:.1f}s"
    assert result.returncode == 1, result.stdout
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines, "no problem reported"
    for line in lines:
        match = LINE.match(line)
        assert match is not None, line
        assert match["file"] == str(path)
    assert expected in result.stderr, result.stderr[:2000]


@pytest.mark.parametrize(
    "case", ["alias bomb in a pattern", "pattern nested 1,200 levels", "a 400-digit size"]
)
def test_run_refuses_hostile_manifests_at_once(tmp_path: Path, case: str) -> None:
    make, expected = HOSTILE[case]
    path = tmp_path / "c.yaml"
    path.write_text(str(make()))
    started = time.monotonic()
    result = sluice("run", "-f", str(path))
    assert time.monotonic() - started < 10
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert expected in result.stderr


def test_merge_keys_may_still_override_what_they_bring(tmp_path: Path) -> None:
    """``<<`` is YAML's own way to override a key; it is not a key named twice."""
    path = tmp_path / "c.yaml"
    path.write_text(
        "base: &base {maxMessages: 10, maxInterval: 1s}\n---\n"
        + HEAD
        + "  window:\n    <<: {maxMessages: 10, maxInterval: 1s}\n    maxMessages: 20\n"
    )
    result = sluice("validate", str(path))
    assert result.returncode == 0, result.stderr
