"""The Connector CRD, generated from the spec models the runtime loads (one source of
truth), so the API server rejects what the runtime would reject wherever a schema can say
it.

Pydantic's JSON Schema is turned into a *structural* OpenAPI v3 schema: references are
inlined, ``X | None`` becomes an optional field (nullable only where null means something
other than absent), free-form objects keep unknown fields, sizes are int-or-string, and
defaults are written as they appear in manifests (``10s``, ``6Mi``). Cross-field rules that
pydantic checks in validators are restated as CEL rules next to the fields they concern.

    sluice crd > crds/sluice.dev_connectors.yaml
"""

from __future__ import annotations

import copy
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, NoDefault
from pydantic_core import core_schema

from sluice_operator.status import ConnectorStatus
from sluice_runtime.config import (
    API_GROUP,
    API_VERSION,
    KIND,
    MAX_CONSUMERS_PER_POD,
    QUEUE_NEEDS_TOLERANCE,
    QUEUE_NEEDS_UNORDERED,
    Connector,
)
from sluice_runtime.units import K8S_QUANTITY_PATTERN

PLURAL = "connectors"
SINGULAR = "connector"
SHORT_NAMES = ["slc"]
CATEGORIES = ["sluice"]
CRD_NAME = f"{PLURAL}.{API_GROUP}"
CRD_FILE = f"crds/{API_GROUP}_{PLURAL}.yaml"

# The runtime objects are named sluice-<name> and the metrics Service name must be a
# DNS-1035 label (63 characters at most), so Connector names are one too, 7 shorter.
NAME_MAX_LENGTH = 56
NAME_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"

HEADER = (
    "# Generated from the spec models (runtime/sluice_runtime/config.py) by `sluice crd`.\n"
    "# Do not edit: run `sluice crd > crds/sluice.dev_connectors.yaml` instead.\n"
)

Rule = dict[str, str]


def _rule(rule: str, message: str, field_path: str | None = None) -> Rule:
    entry = {"rule": rule, "message": message}
    if field_path is not None:
        entry["fieldPath"] = field_path
        entry["reason"] = "FieldValueInvalid"
    return entry


def _exactly_one(*fields: str) -> str:
    return "[" + ", ".join(f"has(self.{f})" for f in fields) + "].filter(x, x).size() == 1"


def _immutable(field: str, message: str) -> Rule:
    return {
        "rule": f"has(self.{field}) == has(oldSelf.{field})"
        f" && (!has(self.{field}) || self.{field} == oldSelf.{field})",
        "message": message,
        "fieldPath": f".{field}",
        "reason": "FieldValueForbidden",
    }


_QUEUE = "(has(self.source.kafka.consumption) && self.source.kafka.consumption == 'queue')"

# CEL rules by the path of the object they sit on, below spec. They restate the model
# validators of sluice_runtime.config; tests check both reject the same manifests.
RULES: dict[tuple[str, ...], list[Rule]] = {
    (): [
        _rule(
            "!has(self.sink.format) || self.sink.format != 'cloudevents-binary'"
            " || (has(self.window) && has(self.window.maxMessages)"
            " && self.window.maxMessages == 1)",
            "sink.format cloudevents-binary sends one event per request:"
            " it needs window.maxMessages: 1",
            ".window.maxMessages",
        ),
        _rule(
            f"!{_QUEUE} || (has(self.delivery) && has(self.delivery.ordering)"
            " && self.delivery.ordering == 'unordered')",
            QUEUE_NEEDS_UNORDERED,
            ".delivery.ordering",
        ),
        _rule(
            f"!{_QUEUE} || !has(self.delivery) || !has(self.delivery.errorTolerance)"
            " || self.delivery.errorTolerance == 'all'",
            QUEUE_NEEDS_TOLERANCE,
            ".delivery.errorTolerance",
        ),
    ],
    ("source", "kafka"): [
        _immutable(
            "consumerGroup",
            "consumerGroup is immutable: a new group would start again from"
            " initialOffset; create a new Connector instead",
        ),
        _immutable(
            "shareGroup",
            "shareGroup is immutable: a new group would start again from"
            " initialOffset; create a new Connector instead",
        ),
        {
            "rule": "(has(self.consumption) ? self.consumption : 'group')"
            " == (has(oldSelf.consumption) ? oldSelf.consumption : 'group')",
            "message": "consumption is immutable: the other kind of group would start again"
            " from initialOffset; create a new Connector instead",
            "fieldPath": ".consumption",
            "reason": "FieldValueForbidden",
        },
    ],
    ("filter",): [
        _rule(_exactly_one("pattern", "patterns"), "set exactly one of pattern or patterns")
    ],
    ("transform",): [
        _rule(
            _exactly_one("jsonPath", "template", "udf"),
            "set exactly one of jsonPath, template or udf",
        )
    ],
    ("transform", "udf"): [
        _rule(
            _exactly_one("configMapRef", "file", "source"),
            "set exactly one of configMapRef, file or source",
        )
    ],
    ("sink",): [_rule(_exactly_one("uri", "ref"), "set exactly one of uri or ref")],
    ("sink", "uri"): [
        _rule(
            "self.startsWith('http://') || self.startsWith('https://')",
            "uri must start with http:// or https://",
        )
    ],
    ("scaling",): [
        _rule(
            "!has(self.maxReplicas) || !has(self.minReplicas)"
            " || self.minReplicas <= self.maxReplicas",
            "minReplicas must not exceed maxReplicas",
            ".minReplicas",
        ),
        _rule(
            "(has(self.consumersPerReplica) ? self.consumersPerReplica : 1)"
            " * (has(self.processesPerReplica) ? self.processesPerReplica : 1)"
            f" <= {MAX_CONSUMERS_PER_POD}",
            f"consumersPerReplica times processesPerReplica must not exceed {MAX_CONSUMERS_PER_POD}"
            " Kafka consumers per pod",
            ".processesPerReplica",
        ),
    ],
}

# Lists whose items must be unique (topics also repeat-checked by the model).
SETS: set[tuple[str, ...]] = {
    ("source", "kafka", "topics"),
    ("source", "kafka", "bootstrapServers"),
}

# Where a shared model reads wrongly in one place (SecretKeyRef also names ConfigMaps).
DESCRIPTIONS: dict[tuple[str, ...], str] = {
    ("transform", "udf", "configMapRef", "name"): "Name of a ConfigMap in the Connector's"
    " namespace.",
    ("transform", "udf", "configMapRef", "key"): "Key inside the ConfigMap.",
}


_QUANTITIES = {
    "type": "object",
    "additionalProperties": {
        "pattern": K8S_QUANTITY_PATTERN,
        "x-kubernetes-int-or-string": True,
        "anyOf": [{"type": "integer"}, {"type": "string"}],
    },
}

# Fields the models leave free-form but the API server can check: runtime.resources is
# a container's ResourceRequirements, and a bad quantity would only fail at apply.
SCHEMAS: dict[tuple[str, ...], dict[str, Any]] = {
    ("runtime", "resources"): {
        "type": "object",
        "properties": {"requests": _QUANTITIES, "limits": _QUANTITIES},
    },
}


class _ManifestDefaults(GenerateJsonSchema):
    """Writes default factories too: a nested model's default is ``{}``, so the API server
    fills in the nested defaults when the whole object is left out."""

    def get_default_value(self, schema: core_schema.WithDefaultSchema) -> Any:
        factory = schema.get("default_factory")
        if factory is not None and not schema.get("default_factory_takes_data"):
            value = factory()  # type: ignore[call-arg]
            return {} if isinstance(value, BaseModel) else value
        return super().get_default_value(schema)


def model_schema(model: type[BaseModel]) -> dict[str, Any]:
    """A model's schema as a structural OpenAPI v3 schema."""
    raw = model.model_json_schema(
        by_alias=True, mode="serialization", schema_generator=_ManifestDefaults
    )
    definitions = raw.pop("$defs", {})
    return _structural(raw, definitions)


def _structural(node: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    node = dict(node)
    if "$ref" in node:
        target = copy.deepcopy(definitions[node.pop("$ref").rsplit("/", 1)[-1]])
        node = {**target, **node}  # the use site's description and default win

    nullable = False
    if "anyOf" in node:
        options = [o for o in node.pop("anyOf") if o != {"type": "null"}]
        if node.get("x-kubernetes-int-or-string"):
            # The one anyOf a structural schema allows; patterns move out of it.
            pattern = next((o["pattern"] for o in options if "pattern" in o), None)
            node["anyOf"] = [{"type": "integer"}, {"type": "string"}]
            if pattern is not None:
                node["pattern"] = pattern
        elif len(options) == 1:
            inner = _structural(options[0], definitions)
            node = {**inner, **{k: v for k, v in node.items() if k != "title"}}
            # Null only differs from absent when the field has a non-null default.
            nullable = "default" in node and node["default"] is not None
        else:
            raise ValueError(f"cannot express anyOf {options!r} in a structural schema")

    node.pop("title", None)
    if "description" in node:
        node["description"] = _one_line(node["description"])
    if node.get("default", NoDefault) is None:
        del node["default"]
    if nullable:
        node["nullable"] = True
    if node.get("type") == "object":
        extra = node.pop("additionalProperties", None)
        if "properties" in node:
            node["properties"] = {
                key: _structural(value, definitions) for key, value in node["properties"].items()
            }
        elif extra is True or extra is None:
            node["x-kubernetes-preserve-unknown-fields"] = True
        elif isinstance(extra, dict):
            node["additionalProperties"] = _structural(extra, definitions)
    if "items" in node:
        node["items"] = _structural(node["items"], definitions)
    if "const" in node:
        node["enum"] = [node.pop("const")]
    if isinstance(node.get("exclusiveMinimum"), int | float) and not isinstance(
        node["exclusiveMinimum"], bool
    ):
        node["minimum"] = node.pop("exclusiveMinimum")
        node["exclusiveMinimum"] = True
    return _ordered(node)


def _one_line(text: str) -> str:
    """Docstrings as ``kubectl explain`` shows them best: one paragraph, no reST markup."""
    return " ".join(text.replace("``", "").split())


# Keys in the order a reader wants them: what it is, then its bounds, then its parts.
_KEY_ORDER = [
    "description",
    "type",
    "format",
    "enum",
    "default",
    "nullable",
    "minimum",
    "exclusiveMinimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "maxProperties",
    "pattern",
    "x-kubernetes-int-or-string",
    "anyOf",
    "x-kubernetes-preserve-unknown-fields",
    "items",
    "additionalProperties",
    "required",
    "properties",
]


def _ordered(node: dict[str, Any]) -> dict[str, Any]:
    rank = {key: index for index, key in enumerate(_KEY_ORDER)}
    return dict(sorted(node.items(), key=lambda item: rank.get(item[0], len(rank))))


def _at(schema: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    node = schema
    for part in path:
        node = node["properties"][part]
    return node


def spec_schema() -> dict[str, Any]:
    spec: dict[str, Any] = copy.deepcopy(model_schema(Connector)["properties"]["spec"])
    for path, rules in RULES.items():
        _at(spec, path).setdefault("x-kubernetes-validations", []).extend(rules)
    for path in SETS:
        _at(spec, path)["x-kubernetes-list-type"] = "set"
    for path, text in DESCRIPTIONS.items():
        _at(spec, path)["description"] = text
    for path, schema in SCHEMAS.items():
        replacement = copy.deepcopy(schema)
        if "description" in _at(spec, path):
            replacement["description"] = _at(spec, path)["description"]
        _at(spec, path[:-1])["properties"][path[-1]] = _ordered(replacement)
    return spec


def status_schema() -> dict[str, Any]:
    status = model_schema(ConnectorStatus)
    status.pop("description", None)
    conditions = status["properties"]["conditions"]
    conditions.pop("default", None)
    conditions["x-kubernetes-list-type"] = "map"
    conditions["x-kubernetes-list-map-keys"] = ["type"]
    return status


def _ready(field: str) -> str:
    return f'.status.conditions[?(@.type=="Ready")].{field}'


PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Topics", "type": "string", "jsonPath": ".spec.source.kafka.topics"},
    {"name": "Partitions", "type": "integer", "jsonPath": ".status.partitions"},
    {"name": "Replicas", "type": "integer", "jsonPath": ".status.replicas"},
    {"name": "Ready", "type": "string", "jsonPath": _ready("status")},
    {"name": "Lag", "type": "integer", "jsonPath": ".status.lag"},
    {
        "name": "Rate",
        "type": "number",
        "description": "Events delivered per second (last minute).",
        "jsonPath": ".status.deliveredPerSecond",
    },
    {
        "name": "Oldest",
        "type": "integer",
        "description": "Seconds since the oldest record held and not yet delivered was written.",
        "jsonPath": ".status.oldestUndeliveredSeconds",
    },
    {"name": "Reason", "type": "string", "jsonPath": _ready("reason")},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {
        "name": "Ready Pods",
        "type": "integer",
        "jsonPath": ".status.readyReplicas",
        "priority": 1,
    },
    {"name": "Sink", "type": "string", "jsonPath": ".status.sinkUri", "priority": 1},
]


def build_crd() -> dict[str, Any]:
    """The CustomResourceDefinition of Connector, as a plain dict."""
    schema = {
        "type": "object",
        "description": "Moves records from Kafka topics to an HTTP function.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {
                "type": "object",
                "properties": {
                    "name": {
                        "type": "string",
                        "maxLength": NAME_MAX_LENGTH,
                        "pattern": NAME_PATTERN,
                    }
                },
            },
            "spec": spec_schema(),
            "status": status_schema(),
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": CRD_NAME,
            "labels": {"app.kubernetes.io/part-of": "sluice"},
        },
        "spec": {
            "group": API_GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": SHORT_NAMES,
                "categories": CATEGORIES,
            },
            "versions": [
                {
                    "name": API_VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": schema},
                    "subresources": {
                        "status": {},
                        # kubectl scale, an HPA or KEDA write spec.replicas; the operator
                        # then uses it instead of its own rule.
                        "scale": {
                            "specReplicasPath": ".spec.replicas",
                            "statusReplicasPath": ".status.replicas",
                            "labelSelectorPath": ".status.selector",
                        },
                    },
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                }
            ],
        },
    }


def render_crd() -> str:
    """The CRD as the YAML committed at ``crds/sluice.dev_connectors.yaml``."""
    return HEADER + yaml.dump(
        build_crd(), Dumper=_NoAliases, sort_keys=False, width=100, allow_unicode=True
    )


class _NoAliases(yaml.SafeDumper):
    """Writes repeated parts out in full: a CRD is read by people, not only by parsers."""

    def ignore_aliases(self, data: Any) -> bool:
        return True
