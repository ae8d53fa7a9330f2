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


def test_grafana_dashboard_queries_only_exported_metrics() -> None:
    import json

    dashboard = json.loads((DOC.parent / "grafana-dashboard.json").read_text())
    exported = {
        f"{family.name}_total" if family.type == "counter" else family.name
        for family in Metrics().registry.collect()
    }
    histograms = {n for n in exported if n.endswith(("_seconds", "_size"))}
    queried = set()
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            queried |= set(re.findall(r"\bsluice_\w+", target["expr"]))
    for name in queried:
        assert name in exported or name.removesuffix("_bucket") in histograms, name
    # Throughput, lag, latency, errors and the DLQ all have a panel.
    for needed in (
        "sluice_delivered_total",
        "sluice_lag",
        "sluice_dead_lettered_total",
        "sluice_end_to_end_latency_seconds_bucket",
        "sluice_retries_total",
    ):
        assert needed in queried
