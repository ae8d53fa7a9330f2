"""Specs the CRD schema cannot judge: each is reported naming the field at fault."""

from __future__ import annotations

from typing import Any

import pytest

from sluice_operator.validation import InvalidSpec, check_udf_syntax, validate_connector

UDF = "def handle_message(event, context):\n    return event['value']\n"


def body(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "Connector",
        "metadata": {"name": "c", "namespace": "n", "uid": "u"},
        "spec": {
            "source": {"kafka": {"bootstrapServers": ["k:9092"], "topics": ["t"]}},
            "sink": {"uri": "http://f/"},
            **spec,
        },
    }


def no_configmaps(_namespace: str, _name: str) -> dict[str, Any] | None:
    return None


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"filter": {"pattern": {"value": {"amount": [{"numeric": [">"]}]}}}},
            "spec.filter.pattern.value.amount[0]: numeric needs",
        ),
        (
            {"filter": {"patterns": [{"a": ["x"]}, {"b": []}]}},
            "spec.filter.patterns[1].b",
        ),
        ({"transform": {"jsonPath": "value"}}, "spec.transform.jsonPath: invalid JSONPath"),
        (
            {"transform": {"template": {"paths": {"u": "$.["}, "template": "<u>"}}},
            "spec.transform.template.paths.u",
        ),
        ({"transform": {"udf": {"source": "def handle_message(:"}}}, "spec.transform.udf: line 1"),
        (
            {"transform": {"udf": {"source": "def other(e, c): pass"}}},
            "spec.transform.udf: no function handle_message",
        ),
        ({"transform": {"udf": {"file": "f.py"}}}, "spec.transform.udf.file"),
        (
            {"transform": {"udf": {"configMapRef": {"name": "code", "key": "main.py"}}}},
            "spec.transform.udf.configMapRef: ConfigMap n/code not found",
        ),
        ({"window": {"maxBytes": 0}}, "spec.window.maxBytes"),
        (
            {"runtime": {"resources": {"requests": {"cpu": "a lot"}}}},
            "spec.runtime.resources.requests.cpu: 'a lot' is not a quantity",
        ),
        ({"runtime": {"resources": {"limit": {"cpu": 1}}}}, "unknown field 'limit'"),
    ],
)
def test_invalid_specs_name_the_field(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidSpec) as raised:
        validate_connector(body(**spec), no_configmaps)
    assert message in str(raised.value)


def test_udf_from_a_configmap_is_read_checked_and_returned() -> None:
    def configmaps(namespace: str, name: str) -> dict[str, Any] | None:
        assert (namespace, name) == ("n", "code")
        return {"data": {"main.py": UDF}}

    spec = {"transform": {"udf": {"configMapRef": {"name": "code", "key": "main.py"}}}}
    valid = validate_connector(body(**spec), configmaps)
    assert valid.udf_source == UDF
    spec["transform"]["udf"]["configMapRef"]["key"] = "other.py"
    with pytest.raises(InvalidSpec, match=r"has no key 'other\.py'"):
        validate_connector(body(**spec), configmaps)


def test_a_udf_is_parsed_never_run() -> None:
    # Module code that would run at import must not run in the operator.
    check_udf_syntax(
        "raise SystemExit(3)\ndef handle_message(e, c):\n    return e\n", "handle_message"
    )
    check_udf_syntax("from json import loads as handle_message\n", "handle_message")
    check_udf_syntax("handle_message = lambda e, c: e\n", "handle_message")


def test_a_valid_spec_passes() -> None:
    valid = validate_connector(
        body(
            filter={"pattern": {"value": {"device": [{"prefix": "ios"}]}}},
            transform={"template": {"paths": {"u": "$.value.user"}, "template": '{"u": <u>}'}},
        ),
        no_configmaps,
    )
    assert valid.connector.metadata.name == "c"
    assert valid.udf_source is None
