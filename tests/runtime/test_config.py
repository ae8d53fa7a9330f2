"""Manifests load with defaults, and bad ones fail with messages naming each field."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import annotated_types
import pytest
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from sluice_runtime.config import (
    ConnectorSpec,
    load_connector,
    load_connector_file,
)
from sluice_runtime.errors import ManifestError
from sluice_runtime.reference_doc import render
from sluice_runtime.units import UnitRange, format_duration, parse_duration, parse_quantity


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
    assert connector.spec.source.kafka.consumption == "group"
    # Not the consumer group's id: the broker refuses a share group under it.
    assert connector.share_group == "ns.c.queue"


QUEUE = {"kafka": {"bootstrapServers": ["k:9092"], "topics": ["t"], "consumption": "queue"}}


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
        (
            {"sink": {"uri": "http://f/", "headers": {"x-a": "1\r\nx-b: 2"}}},
            "spec.sink.headers: sink.headers.x-a: only printable ASCII",
        ),
        (
            {"sink": {"uri": "http://f/", "headers": {"x a": "1"}}},
            "sink.headers: 'x a' is not an HTTP header name",
        ),
        (
            {"sink": {"uri": "http://f/", "headers": {"Content-Length": "1"}}},
            "sink.headers: 'Content-Length' is set by the runtime",
        ),
        ({"source": QUEUE}, "consumption queue spreads a partition over every replica"),
        (
            {"source": QUEUE, "delivery": {"ordering": "unordered", "errorTolerance": "none"}},
            "consumption queue cannot hold a failing record",
        ),
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


def numeric_fields(model: type[BaseModel], path: str) -> Iterator[tuple[str, FieldInfo]]:
    """Every number, duration and size field of the spec models, with its manifest path."""
    for name, field in model.model_fields.items():
        alias = field.alias or name
        annotation = field.annotation
        nested = [
            arg
            for arg in (annotation, *get_args(annotation))
            if isinstance(arg, type) and issubclass(arg, BaseModel)
        ]
        if nested:
            yield from numeric_fields(nested[0], f"{path}.{alias}")
        elif int in (annotation, *get_args(annotation)) or float in (
            annotation,
            *get_args(annotation),
        ):
            yield f"{path}.{alias}", field


NUMERIC_FIELDS = dict(numeric_fields(ConnectorSpec, "spec"))


def bounds(field: FieldInfo) -> tuple[Any, Any]:
    low: Any = None
    high: Any = None
    for item in field.metadata:
        if isinstance(item, UnitRange):
            low, high = item.parse(item.minimum), item.parse(item.maximum)
        elif isinstance(item, annotated_types.Ge | annotated_types.Gt):
            low = getattr(item, "ge", getattr(item, "gt", None))
        elif isinstance(item, annotated_types.Le):
            high = item.le
    return low, high


def with_value(path: str, value: Any) -> dict[str, Any]:
    keys = path.split(".")[1:]
    spec: dict[str, Any] = {}
    node = spec
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value
    if keys[:2] == ["delivery", "rateLimit"] and keys[-1] != "requestsPerSecond":
        node.setdefault("requestsPerSecond", 1)
    if keys[0] == "sink":
        spec["sink"]["uri"] = "http://f/"
    return manifest(**spec)


def test_the_spec_has_the_numbers_it_should() -> None:
    assert len(NUMERIC_FIELDS) >= 20
    assert "spec.window.maxInterval" in NUMERIC_FIELDS
    assert "spec.runtime.buffer.maxBytes" in NUMERIC_FIELDS


@pytest.mark.parametrize("path", NUMERIC_FIELDS)
def test_every_number_has_a_finite_documented_range(path: str) -> None:
    field = NUMERIC_FIELDS[path]
    low, high = bounds(field)
    assert low is not None, f"{path} has no lower bound"
    assert high is not None, f"{path} has no upper bound"
    assert math.isfinite(low)
    assert math.isfinite(high)
    # The reference documents it...
    [row] = [line for line in render().splitlines() if line.startswith(f"| `{path}` |")]
    assert " to " in row.split("|")[3], row
    # ...and the models refuse what is beyond it, naming the field.
    for beyond in (high * 2 + 1, float("inf"), float("nan"), 10**400):
        with pytest.raises(ManifestError) as refused:
            load_connector(with_value(path, beyond), "c.yaml")
        assert str(refused.value).splitlines()[1].startswith(f"  {path}: "), str(refused.value)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            {"window": {"maxBytes": "9" * 400 + "Ki"}},
            "spec.window.maxBytes: size '999",
        ),
        ({"window": {"maxBytes": 1e400}}, "invalid size inf"),
        ({"window": {"maxInterval": 1e400}}, "a duration must be a finite number of seconds"),
        ({"window": {"maxInterval": "9" * 400 + "h"}}, "must be a finite number of seconds"),
        ({"window": {"maxInterval": "6m"}}, "must be between 0s and 5m, got '6m'"),
        ({"sink": {"uri": "http://f/", "timeout": "16m"}}, "must be between 1ms and 15m"),
        ({"sink": {"uri": "http://f/", "timeout": "0s"}}, "must be between 1ms and 15m"),
        (
            {"delivery": {"rateLimit": {"requestsPerSecond": float("inf")}}},
            "requestsPerSecond: Input should be a finite number",
        ),
        ({"delivery": {"retry": {"maxRetryDuration": "169h"}}}, "between 0s and 168h"),
    ],
)
def test_absurd_numbers_are_refused_clearly(spec: dict[str, Any], expected: str) -> None:
    with pytest.raises(ManifestError) as refused:
        load_connector(manifest(**spec), "c.yaml")
    assert expected in str(refused.value)


def test_sizes_are_exact() -> None:
    assert parse_quantity("1.5Ki") == 1536
    assert parse_quantity("0.1M") == 100_000
    assert parse_quantity("9" * 30) == int("9" * 30)
    with pytest.raises(ValueError, match="is too large"):
        parse_quantity("9" * 5000)
