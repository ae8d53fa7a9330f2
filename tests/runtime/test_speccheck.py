"""One spec check for `sluice validate` and the operator: every problem of a manifest in one
run, each at its field, and never a line of the user's UDF run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sluice_cli.validate import run_validate
from sluice_operator.validation import InvalidSpec, validate_connector
from sluice_runtime.config import Udf
from sluice_runtime.errors import FieldPath, ManifestError, SluiceError, SpecError
from sluice_runtime.patterns import PatternError, compile_pattern
from sluice_runtime.speccheck import check_connector
from sluice_runtime.transform import TransformSpecError, compile_jsonpath
from tests.cli.test_cli import sluice


def manifest(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "Connector",
        "metadata": {"name": "c", "namespace": "n"},
        "spec": {
            "source": {"kafka": {"bootstrapServers": ["k:9092"], "topics": ["t"]}},
            "sink": {"uri": "http://f/"},
            **spec,
        },
    }


def no_udf_source(_udf: Udf, _where: FieldPath) -> str | None:
    return None


def no_configmaps(_namespace: str, _name: str) -> dict[str, Any] | None:
    return None


BAD_EVERYWHERE = {
    "filter": {"pattern": {"value": {"amount": [{"numeric": [">"]}]}}},
    "window": {"maxMessages": 0},
    "transform": {"jsonPath": "value"},
    "runtime": {"resources": {"requests": {"cpu": "a lot"}}},
}


def test_every_problem_is_reported_at_its_field_in_one_run() -> None:
    checked = check_connector(manifest(**BAD_EVERYWHERE), no_udf_source)
    assert checked.connector is None
    assert [problem.path for problem in checked.problems] == [
        ("spec", "window", "maxMessages"),
        ("spec", "filter", "pattern", "value", "amount", 0),
        ("spec", "transform", "jsonPath"),
        ("spec", "runtime", "resources", "requests", "cpu"),
    ]
    assert str(checked.problems[1]).startswith("spec.filter.pattern.value.amount[0]: numeric needs")


def test_the_operator_reports_every_problem_in_one_message() -> None:
    with pytest.raises(InvalidSpec) as raised:
        validate_connector(manifest(**BAD_EVERYWHERE), no_configmaps)
    message = str(raised.value)
    for field in (
        "spec.window.maxMessages: ",
        "spec.filter.pattern.value.amount[0]: numeric needs",
        "spec.transform.jsonPath: invalid JSONPath",
        "spec.runtime.resources.requests.cpu: 'a lot' is not a quantity",
    ):
        assert field in message
    assert len(raised.value.problems) == 4


def test_validate_reports_every_problem_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "apiVersion: sluice.dev/v1alpha1\n"
        "kind: Connector\n"
        "metadata: {name: c}\n"
        "spec:\n"
        "  source:\n"
        "    kafka: {bootstrapServers: ['k:9092'], topics: [t]}\n"
        "  filter:\n"
        "    pattern:\n"
        "      value: {amount: [{numeric: ['>']}]}\n"
        "  window:\n"
        "    maxMessages: 0\n"
        "  sink: {uri: 'http://f/'}\n"
    )
    assert run_validate([str(path)]) == 1
    errors = capsys.readouterr().err.splitlines()
    assert errors == [
        f"{path}:9: spec.filter.pattern.value.amount[0]: numeric needs an array of one or two"
        ' comparisons, such as [">", 0] or [">", 0, "<=", 5], not [">"]',
        f"{path}:11: spec.window.maxMessages: Input should be greater than or equal to 1",
    ]


def test_the_field_path_is_data_not_text() -> None:
    with pytest.raises(PatternError) as pattern:
        compile_pattern({"a.b": {"$or": [{"c": ["x"]}, {"d": [{"exists": 1}]}]}}, ("spec", "f"))
    assert pattern.value.path == ("spec", "f", "a.b", "$or", 1, "d", 0)
    assert pattern.value.problem == "exists needs true or false, not 1"
    with pytest.raises(TransformSpecError) as transform:
        compile_jsonpath("$..x", ("spec", "transform", "template", "paths", "a.b"))
    assert transform.value.path == ("spec", "transform", "template", "paths", "a.b")
    for error in (pattern.value, transform.value):
        assert isinstance(error, SpecError)
        assert isinstance(error, SluiceError)
        assert isinstance(error, ValueError)
    assert issubclass(ManifestError, SluiceError)
    assert issubclass(InvalidSpec, ManifestError)


UDF_WRITING_AT_IMPORT = """\
import os
with open({marker!r}, "w") as leak:
    leak.write(repr(dict(os.environ)))

def handle_message(event, context):
    return event
"""


def test_validate_never_runs_udf_code(tmp_path: Path) -> None:
    marker = tmp_path / "leaked-environment"
    (tmp_path / "udf.py").write_text(UDF_WRITING_AT_IMPORT.format(marker=str(marker)))
    by_file = manifest(transform={"udf": {"file": "udf.py"}})
    inline = manifest(transform={"udf": {"source": (tmp_path / "udf.py").read_text()}})
    inline["metadata"]["name"] = "d"
    # JSON is YAML: one document per line.
    (tmp_path / "c.yaml").write_text(json.dumps(by_file) + "\n---\n" + json.dumps(inline))
    result = sluice("validate", str(tmp_path / "c.yaml"))
    assert result.returncode == 0, result.stderr
    assert "2 Connector(s) valid" in result.stdout
    assert not marker.exists()


def test_the_operator_never_runs_udf_code(tmp_path: Path) -> None:
    marker = tmp_path / "leaked-environment"
    source = UDF_WRITING_AT_IMPORT.format(marker=str(marker))

    def configmaps(_namespace: str, _name: str) -> dict[str, Any] | None:
        return {"data": {"main.py": source}}

    for udf in ({"source": source}, {"configMapRef": {"name": "code", "key": "main.py"}}):
        validate_connector(manifest(transform={"udf": udf}), configmaps)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("def handle_message(e, c):\n    return e\nreturn 1\n", "'return' outside function"),
        ("def handle_message(e, c):\n    nonlocal x\n", "no binding for nonlocal 'x'"),
        ("x = (" * 300 + ")" * 300, "too many nested parentheses"),
        ("x = " + "-" * 100_000 + "1\n", "does not compile"),
        ("def handle_message(e, c):\n    return e\n\0", "cannot contain null bytes"),
        ("def handle(e, c):\n    return e\n", "no function handle_message defined at module"),
    ],
)
def test_a_udf_must_compile_not_only_parse(source: str, message: str) -> None:
    checked = check_connector(manifest(transform={"udf": {"source": source}}), no_udf_source)
    [problem] = checked.problems
    assert problem.path == ("spec", "transform", "udf")
    assert message in problem.problem


def test_a_udf_file_is_read_beside_the_manifest_and_named_when_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "c.yaml").write_text(
        "kind: Connector\napiVersion: sluice.dev/v1alpha1\nmetadata: {name: c}\nspec:\n"
        "  source: {kafka: {bootstrapServers: ['k:9092'], topics: [t]}}\n"
        "  transform: {udf: {file: missing.py}}\n"
        "  sink: {uri: 'http://f/'}\n"
    )
    assert run_validate([str(tmp_path / "c.yaml")]) == 1
    [error] = capsys.readouterr().err.splitlines()
    assert error.startswith(f"{tmp_path / 'c.yaml'}:6: spec.transform.udf.file: cannot read ")


def test_manifest_errors_keep_every_problem_as_data() -> None:
    from sluice_runtime.config import load_connector

    with pytest.raises(ManifestError) as raised:
        load_connector(manifest(window={"maxMessages": 0, "maxBytes": "1Ti"}), "c.yaml")
    assert [p.path for p in raised.value.problems] == [
        ("spec", "window", "maxMessages"),
        ("spec", "window", "maxBytes"),
    ]
    assert str(raised.value).splitlines()[0] == "c.yaml: invalid Connector"


def test_the_operator_names_at_most_twenty_problems() -> None:
    with pytest.raises(InvalidSpec) as raised:
        validate_connector(manifest(**{f"bogus{i}": 1 for i in range(30)}), no_configmaps)
    assert len(raised.value.problems) == 30
    message = str(raised.value)
    assert message.count("Extra inputs are not permitted") == 20
    assert message.endswith("; and 10 more")
