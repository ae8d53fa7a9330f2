"""docs/metrics.md lists exactly the metrics the runtime exports."""

from __future__ import annotations

import re
from pathlib import Path

from sluice_runtime.metrics import Metrics

DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"


def test_documented_metrics_match_exported_ones() -> None:
    documented = set(re.findall(r"^\| `(sluice_\w+)`", DOC.read_text(), re.MULTILINE))
    exported = set()
    for family in Metrics().registry.collect():
        name = family.name + ("_total" if family.type == "counter" else "")
        exported.add(name)
    assert documented == exported
