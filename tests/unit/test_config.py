"""Manifests load with defaults, and bad ones fail with messages naming each field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sluice_runtime.config import ManifestError, load_connector, load_connector_file
from sluice_runtime.units import format_duration, parse_duration, parse_quantity


def manifest(**spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "source": {"kafka": {"bootstrapServers": ["k:9092"], "topics": ["t"]}},
        "sink": {"uri": "http://f/"},
    }
    body.update(spec)
    return {
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "Connector",
        "metadata": {"name": "c", "namespace": "ns"},
        "spec": body,
    }


def test_defaults_and_derived_names() -> None:
    connector = load_connector(manifest())
    assert connector.consumer_group == "ns.c"
    assert connector.source_uri == "/namespaces/ns/connectors/c"
    assert connector.spec.window.max_messages == 100
    assert connector.spec.delivery.retry.max_attempts == 176
    assert connector.spec.source.kafka.initial_offset == "latest"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"bogus": 1}, "spec.bogus: Extra inputs are not permitted"),
        (
            {"window": {"maxMessages": 0}},
            "spec.window.maxMessages: Input should be greater than or equal to 1",
        ),
        (
            {"window": {"maxMessages": 10001}},
            "spec.window.maxMessages: Input should be less than or equal to 10000",
        ),
        (
            {"window": {"maxInterval": "-1s"}},
            "spec.window.maxInterval: a duration cannot be negative",
        ),
        ({"window": {"maxInterval": "10 parsecs"}}, "spec.window.maxInterval: invalid duration"),
        ({"window": {"maxBytes": "6 MB"}}, "spec.window.maxBytes: invalid size"),
        ({"sink": {}}, "spec.sink: set exactly one of sink.uri or sink.ref"),
        ({"sink": {"uri": "ftp://x"}}, "spec.sink.uri: sink.uri must start with http"),
        (
            {"sink": {"uri": "http://f/", "format": "cloudevents-binary"}},
            "cloudevents-binary needs window.maxMessages: 1",
        ),
        ({"scaling": {"minReplicas": 5, "maxReplicas": 2}}, "minReplicas must not exceed"),
    ],
)
def test_bad_manifests_name_the_field(spec: dict[str, Any], expected: str) -> None:
    with pytest.raises(ManifestError) as error:
        load_connector(manifest(**spec), "connector.yaml")
    assert str(error.value).startswith("connector.yaml: invalid Connector")
    assert expected in str(error.value)


def test_missing_sink_is_named(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "kind: Connector\nmetadata: {name: c}\n"
        "spec:\n  source: {kafka: {bootstrapServers: [k], topics: [t]}}\n"
    )
    with pytest.raises(ManifestError, match=r"spec.sink: Field required"):
        load_connector_file(path)


def test_files_that_are_not_connectors(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("a: [")
    with pytest.raises(ManifestError, match="not valid YAML"):
        load_connector_file(tmp_path / "bad.yaml")
    (tmp_path / "other.yaml").write_text("kind: ConfigMap\n")
    with pytest.raises(ManifestError, match="no document with kind: Connector"):
        load_connector_file(tmp_path / "other.yaml")
    with pytest.raises(ManifestError, match="cannot read"):
        load_connector_file(tmp_path / "missing.yaml")


def test_units_round_trip() -> None:
    assert parse_duration("1m30s") == 90
    assert parse_duration("100ms") == 0.1
    assert format_duration(0.1) == "100ms"
    assert format_duration(86400) == "24h"
    assert parse_quantity("6Mi") == 6 * 2**20
    assert parse_quantity("1k") == 1000
    dumped = load_connector(manifest(window={"maxInterval": "10s", "maxBytes": "6Mi"}))
    window = dumped.model_dump(by_alias=True)["spec"]["window"]
    assert window == {"maxMessages": 100, "maxInterval": "10s", "maxBytes": "6Mi"}
