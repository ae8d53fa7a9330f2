"""Every shipped example is a valid Connector, and a broken one is pointed at precisely."""

from __future__ import annotations

from pathlib import Path

import pytest

from sluice_cli.validate import run_validate

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 6


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_example_validates(example: Path) -> None:
    assert run_validate([str(example)]) == 0


def test_broken_example_fails_with_a_pointed_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (EXAMPLES[0].parent / "quickstart.yaml").read_text()
    broken = tmp_path / "quickstart.yaml"
    broken.write_text(text.replace("maxInterval: 10s", "maxInterval: 10 seconds"))
    assert run_validate([str(broken)]) == 1
    [message] = capsys.readouterr().err.splitlines()
    assert message.startswith(f"{broken}:16: spec.window.maxInterval: invalid duration")
