"""`sluice validate` points at the line and field of each problem, for GitOps CI."""

from __future__ import annotations

from pathlib import Path

import pytest

from sluice_cli.validate import run_validate

GOOD = """\
apiVersion: sluice.dev/v1alpha1
kind: Connector
metadata: {name: good}
spec:
  source:
    kafka: {bootstrapServers: ["k:9092"], topics: [t]}
  filter:
    pattern: {value: {device: [{prefix: ios}]}}
  transform:
    template: {paths: {u: "$.value.user"}, template: '{"u": <u>}'}
  sink: {uri: "http://f/"}
"""


def test_valid_manifest_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "good.yaml").write_text(GOOD)
    assert run_validate([str(tmp_path / "good.yaml")]) == 0
    assert "1 Connector(s) valid" in capsys.readouterr().out


def test_each_problem_names_file_line_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = GOOD.replace("[{prefix: ios}]", '[{numeric: [">", 5, "<", 1]}]')
    bad += "---\n" + GOOD.replace("name: good", "name: b").replace(
        'sink: {uri: "http://f/"}', 'sink: {uri: "http://f/", format: cloudevents-binary}'
    )
    bad += "---\n" + GOOD.replace("$.value.user", "$..user")
    path = tmp_path / "bad.yaml"
    path.write_text(bad)
    assert run_validate([str(path)]) == 1
    errors = capsys.readouterr().err.splitlines()
    assert errors[0].startswith(f"{path}:8: spec.filter.pattern.value.device[0]: numeric")
    assert errors[1].startswith(f"{path}:16: spec: ")
    assert "cloudevents-binary needs window.maxMessages: 1" in errors[1]
    assert errors[2].startswith(f"{path}:34: spec.transform.template.paths.u:")


def test_unreadable_and_empty_inputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "broken.yaml").write_text("kind: [")
    assert run_validate([str(tmp_path / "broken.yaml")]) == 1
    assert "not valid YAML" in capsys.readouterr().err
    (tmp_path / "cm.yaml").write_text("kind: ConfigMap\n")
    assert run_validate([str(tmp_path / "cm.yaml")]) == 2
    assert run_validate([str(tmp_path / "nope.yaml")]) == 1
    assert "cannot read" in capsys.readouterr().err
