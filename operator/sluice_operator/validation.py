"""Checks of a Connector that the CRD schema cannot make: the spec models' own validators,
patterns, JSONPaths and templates that must compile, and a UDF that must parse and define
its function.

A UDF is only parsed here, never run: its module code would otherwise execute inside the
operator, with the operator's credentials.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sluice_operator.crd import K8S_QUANTITY_PATTERN
from sluice_runtime.config import Connector, ManifestError, Udf, load_connector
from sluice_runtime.patterns import PatternError, compile_pattern, compile_patterns
from sluice_runtime.transform import TransformContext, TransformSpecError, compile_transform


class InvalidSpec(ValueError):
    """The message names the field at fault, e.g. ``spec.filter.pattern.value: …``."""


@dataclass(frozen=True)
class ValidSpec:
    connector: Connector
    udf_source: str | None
    """The UDF's source when it comes from a ConfigMap (its hash is part of the config)."""


_K8S_QUANTITY = re.compile(K8S_QUANTITY_PATTERN)

ReadConfigMap = Callable[[str, str], dict[str, Any] | None]
"""(namespace, name) → the ConfigMap, or None when there is none."""


def _spec_prefixed(message: str) -> str:
    return message if message.startswith("spec.") else f"spec.{message}"


def validate_connector(body: dict[str, Any], read_configmap: ReadConfigMap) -> ValidSpec:
    metadata = body.get("metadata") or {}
    manifest = {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": {"name": metadata.get("name"), "namespace": metadata.get("namespace")},
        "spec": body.get("spec"),
    }
    try:
        connector = load_connector(manifest, "Connector")
    except ManifestError as error:
        # "Connector: invalid Connector" and one indented "field: message" line per error.
        lines = str(error).splitlines()[1:] or [str(error)]
        raise InvalidSpec("; ".join(line.strip() for line in lines)) from None

    spec = connector.spec
    if spec.runtime.resources is not None:
        check_resources(spec.runtime.resources)
    try:
        if spec.filter is not None and spec.filter.pattern is not None:
            compile_pattern(spec.filter.pattern, "spec.filter.pattern")
        elif spec.filter is not None and spec.filter.patterns is not None:
            compile_patterns(spec.filter.patterns, "spec.filter.patterns")
    except PatternError as error:
        raise InvalidSpec(str(error)) from None

    udf_source: str | None = None
    if spec.transform is not None and spec.transform.udf is not None:
        udf = spec.transform.udf
        source = _udf_source(udf, connector.metadata.namespace, read_configmap)
        check_udf_syntax(source, udf.function)
        if udf.config_map_ref is not None:
            udf_source = source
    elif spec.transform is not None:
        try:
            compile_transform(
                spec.transform,
                TransformContext(connector.metadata.name, connector.metadata.namespace),
            )
        except TransformSpecError as error:
            raise InvalidSpec(_spec_prefixed(str(error))) from None
    return ValidSpec(connector, udf_source)


def _udf_source(udf: Udf, namespace: str, read_configmap: ReadConfigMap) -> str:
    if udf.source is not None:
        return udf.source
    if udf.file is not None:
        raise InvalidSpec(
            "spec.transform.udf.file: a file path only works standalone (sluice run);"
            " in the cluster use configMapRef or source"
        )
    ref = udf.config_map_ref
    assert ref is not None  # the model allows exactly one of the three
    found = read_configmap(namespace, ref.name)
    if found is None:
        raise InvalidSpec(
            f"spec.transform.udf.configMapRef: ConfigMap {namespace}/{ref.name} not found"
        )
    data = found.get("data") or {}
    if ref.key not in data:
        raise InvalidSpec(
            f"spec.transform.udf.configMapRef: ConfigMap {namespace}/{ref.name}"
            f" has no key {ref.key!r}"
        )
    return str(data[ref.key])


def check_resources(resources: dict[str, Any]) -> None:
    """A container's requests and limits: what the Deployment would be rejected for."""
    where = "spec.runtime.resources"
    for section, values in resources.items():
        if section not in ("requests", "limits"):
            raise InvalidSpec(f"{where}: unknown field {section!r} (requests or limits)")
        if not isinstance(values, dict):
            raise InvalidSpec(f"{where}.{section}: must map resource names to quantities")
        for resource, quantity in values.items():
            text = str(quantity) if isinstance(quantity, int | float) else quantity
            if (
                isinstance(quantity, bool)
                or not isinstance(text, str)
                or not (_K8S_QUANTITY.match(text))
            ):
                raise InvalidSpec(
                    f"{where}.{section}.{resource}: {quantity!r} is not a quantity"
                    " (such as 250m, 1, 512Mi)"
                )


def check_udf_syntax(source: str, function: str) -> None:
    """The source parses and binds ``function`` at module level (a def, an assignment or
    an import); whether it runs is the runtime's business."""
    where = "spec.transform.udf"
    try:
        tree = ast.parse(source, "<udf>")
    except SyntaxError as error:
        raise InvalidSpec(f"{where}: line {error.lineno}: SyntaxError: {error.msg}") from None
    except ValueError as error:  # NUL bytes
        raise InvalidSpec(f"{where}: {error}") from None
    if function not in _module_names(tree):
        raise InvalidSpec(f"{where}: no function {function} defined at module level")


def _module_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names
