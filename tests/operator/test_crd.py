"""The Connector CRD: generated from the spec models, structural, and committed as is."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from sluice_operator.crd import CRD_FILE, build_crd, render_crd, spec_schema
from sluice_runtime.config import Connector, ConnectorSpec, load_connector

ROOT = Path(__file__).resolve().parents[2]


def walk(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        yield path, node
        for key, value in node.get("properties", {}).items():
            yield from walk(value, f"{path}.{key}")
        if isinstance(node.get("items"), dict):
            yield from walk(node["items"], f"{path}[]")
        if isinstance(node.get("additionalProperties"), dict):
            yield from walk(node["additionalProperties"], f"{path}{{}}")


def test_committed_crd_is_the_generated_one() -> None:
    committed = (ROOT / CRD_FILE).read_text()
    assert committed == render_crd(), (
        f"{CRD_FILE} is out of date with the spec models; regenerate it with\n"
        f"    .venv/bin/sluice crd > {CRD_FILE}"
    )


def test_schema_is_structural() -> None:
    schema = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in walk(schema):
        assert "$ref" not in node, path
        assert "title" not in node, path
        assert "const" not in node, path
        assert node.get("additionalProperties") is not False, path
        assert not ("properties" in node and "additionalProperties" in node), path
        if "anyOf" in node:
            # The only junction allowed: int-or-string, with no types below it but these.
            assert node.get("x-kubernetes-int-or-string") is True, path
            assert node["anyOf"] == [{"type": "integer"}, {"type": "string"}], path
        elif path not in ("",):
            assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields"), path
        if node.get("type") == "object" and "properties" not in node:
            assert node.get("x-kubernetes-preserve-unknown-fields") or isinstance(
                node.get("additionalProperties"), dict
            ), path


def model_fields(model: type[BaseModel], path: str) -> Iterator[str]:
    for name, field in model.model_fields.items():
        alias = field.alias or name
        yield f"{path}.{alias}"
        for inner in _models(field.annotation):
            yield from model_fields(inner, f"{path}.{alias}")


def _models(annotation: Any) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in getattr(annotation, "__args__", ()):
        yield from _models(arg)


def test_every_spec_field_is_in_the_schema() -> None:
    paths = {path for path, _ in walk(spec_schema(), "spec")}
    for field in model_fields(ConnectorSpec, "spec"):
        assert field in paths


def test_fields_carry_manifest_defaults_bounds_and_enums() -> None:
    spec = spec_schema()["properties"]
    window = spec["window"]
    assert window["default"] == {}
    max_messages = window["properties"]["maxMessages"]
    assert (max_messages["type"], max_messages["default"]) == ("integer", 100)
    assert (max_messages["minimum"], max_messages["maximum"]) == (1, 10000)
    assert window["properties"]["maxInterval"]["default"] == "0s"
    assert window["properties"]["maxBytes"]["default"] == "6Mi"
    assert window["properties"]["maxBytes"]["x-kubernetes-int-or-string"] is True
    retry_duration = spec["delivery"]["properties"]["retry"]["properties"]["maxRetryDuration"]
    assert (retry_duration["type"], retry_duration["default"]) == ("string", "24h")
    assert retry_duration["pattern"] == r"^((\d+(\.\d+)?)(ms|s|m|h))+$"
    assert spec["sink"]["properties"]["format"]["enum"] == [
        "cloudevents-batch",
        "json-array",
        "json-values",
        "cloudevents-binary",
    ]
    rate = spec["delivery"]["properties"]["rateLimit"]["properties"]["requestsPerSecond"]
    assert rate["minimum"] == 0
    assert rate["exclusiveMinimum"] is True
    pattern = spec["filter"]["properties"]["pattern"]
    assert pattern["x-kubernetes-preserve-unknown-fields"] is True
    # Optional means absent, not null, except where null has a meaning of its own.
    assert "nullable" not in spec["sink"]["properties"]["uri"]
    auth = spec["source"]["properties"]["kafka"]["properties"]["auth"]
    assert auth["properties"]["saslMechanism"]["nullable"] is True


def apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """What the API server's defaulting does, for objects."""
    if not isinstance(value, dict) or "properties" not in schema:
        return value
    out = dict(value)
    for key, sub in schema["properties"].items():
        if key not in out and "default" in sub:
            out[key] = sub["default"]
        if key in out:
            out[key] = apply_defaults(sub, out[key])
    return out


def test_schema_defaults_are_the_model_defaults() -> None:
    minimal = {
        "source": {"kafka": {"bootstrapServers": ["k:9092"], "topics": ["t"]}},
        "sink": {"uri": "http://f/"},
    }
    defaulted = apply_defaults(spec_schema(), minimal)

    def load(spec: dict[str, Any]) -> Connector:
        return load_connector({"metadata": {"name": "c", "namespace": "n"}, "spec": spec})

    assert load(defaulted) == load(minimal)
    assert defaulted["window"]["maxBytes"] == "6Mi"


def test_crd_has_subresources_columns_names_and_rules() -> None:
    crd = build_crd()
    names = crd["spec"]["names"]
    assert names["shortNames"] == ["slc"]
    assert names["categories"] == ["sluice"]
    version = crd["spec"]["versions"][0]
    assert version["subresources"]["scale"] == {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }
    assert version["subresources"]["status"] == {}
    columns = [c["name"] for c in version["additionalPrinterColumns"] if "priority" not in c]
    assert columns == [
        "Topics",
        "Partitions",
        "Replicas",
        "Ready",
        "Lag",
        "Rate",
        "Oldest",
        "Reason",
        "Age",
    ]
    rules = [
        rule["rule"]
        for _, node in walk(version["schema"]["openAPIV3Schema"])
        for rule in node.get("x-kubernetes-validations", [])
    ]
    assert any("oldSelf.consumerGroup" in rule for rule in rules)
    assert any("cloudevents-binary" in rule for rule in rules)
    assert any("minReplicas <= self.maxReplicas" in rule for rule in rules)
    conditions = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"][
        "conditions"
    ]
    assert conditions["x-kubernetes-list-type"] == "map"


@pytest.mark.parametrize(
    "document", list(yaml.safe_load_all((ROOT / CRD_FILE).read_text())), ids=["crd"]
)
def test_committed_file_is_one_crd(document: dict[str, Any]) -> None:
    assert document["kind"] == "CustomResourceDefinition"
    assert document["metadata"]["name"] == "connectors.sluice.dev"
