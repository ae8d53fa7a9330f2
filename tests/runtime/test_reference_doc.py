"""The Connector reference in docs/ is generated from the models and must not drift."""

from __future__ import annotations

from pathlib import Path

from sluice_runtime.reference_doc import render

DOC = Path(__file__).resolve().parents[2] / "docs" / "reference.md"


def test_reference_doc_matches_the_models() -> None:
    assert DOC.read_text() == render(), (
        "docs/reference.md is stale: run `.venv/bin/python -m sluice_runtime.reference_doc "
        "> docs/reference.md`"
    )


def test_every_field_is_described() -> None:
    undocumented = [line for line in render().splitlines() if line.endswith("|  |")]
    assert undocumented == []
