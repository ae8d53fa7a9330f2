"""The `sluice` command as users and CI call it: exit codes and messages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def sluice(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sluice_cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_validate_every_example() -> None:
    result = sluice("validate", *map(str, sorted((ROOT / "examples").glob("*.yaml"))))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("valid") >= 6


def test_validate_a_broken_manifest_fails(tmp_path: Path) -> None:
    broken = tmp_path / "c.yaml"
    broken.write_text(
        (ROOT / "examples" / "quickstart.yaml")
        .read_text()
        .replace("maxMessages: 2", "maxMessages: 0")
    )
    result = sluice("validate", str(broken))
    assert result.returncode == 1
    assert f"{broken}:15: spec.window.maxMessages:" in result.stderr


def test_test_pattern_answers_json() -> None:
    result = sluice(
        "test-pattern",
        "--pattern",
        '{"value": {"a": [{"prefix": "x"}]}}',
        "--event",
        '{"value": {"a": "xyz"}}',
    )
    assert (result.returncode, result.stdout.strip()) == (0, '{"match": true}')


def test_run_with_a_bad_manifest_says_what_is_wrong(tmp_path: Path) -> None:
    bad = tmp_path / "c.yaml"
    bad.write_text("kind: Connector\nmetadata: {name: c}\nspec: {unknown: 1}\n")
    result = sluice("run", "-f", str(bad))
    assert result.returncode == 2
    assert "spec.unknown: Extra inputs are not permitted" in result.stderr
    assert "spec.source: Field required" in result.stderr


def test_redrive_without_a_dead_letter_topic_is_refused() -> None:
    result = sluice("dlq", "redrive", "-f", str(ROOT / "examples" / "quickstart.yaml"))
    assert result.returncode == 2
    assert "deadLetter" in result.stderr
