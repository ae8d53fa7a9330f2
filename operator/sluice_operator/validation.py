"""The operator's side of the spec check: the runtime's :mod:`sluice_runtime.speccheck`
(the same check ``sluice validate`` runs), with the UDF's source read from its ConfigMap.

A UDF is only parsed and compiled, never run: its module code would otherwise execute
inside the operator, with the operator's credentials.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sluice_runtime.config import Connector, Udf
from sluice_runtime.errors import FieldPath, ManifestError, SpecError
from sluice_runtime.speccheck import ReadUdfSource, check_connector, check_udf_source


class InvalidSpec(ManifestError):
    """Every problem of a Connector object's spec, in one line for its status that names
    each field at fault: ``spec.filter.pattern.value: …; spec.window.maxMessages: …``."""

    def __init__(self, problems: tuple[SpecError, ...]) -> None:
        super().__init__("Connector", problems)

    def __str__(self) -> str:
        shown = [str(problem) for problem in self.problems[:MAX_PROBLEMS_SHOWN]]
        if len(self.problems) > MAX_PROBLEMS_SHOWN:
            shown.append(f"and {len(self.problems) - MAX_PROBLEMS_SHOWN} more")
        return "; ".join(shown)


MAX_PROBLEMS_SHOWN = 20
"""Problems named in the status message: enough to fix a spec, and a bounded status."""


@dataclass(frozen=True)
class ValidSpec:
    connector: Connector
    udf_source: str | None
    """The UDF's source when it comes from a ConfigMap (its hash is part of the config)."""


ReadConfigMap = Callable[[str, str], dict[str, Any] | None]
"""(namespace, name) → the ConfigMap, or None when there is none."""


def validate_connector(body: dict[str, Any], read_configmap: ReadConfigMap) -> ValidSpec:
    """The Connector in ``body`` (a Connector object from the API server), checked;
    InvalidSpec with every problem otherwise."""
    metadata = body.get("metadata") or {}
    namespace = metadata.get("namespace")
    manifest = {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": {"name": metadata.get("name"), "namespace": namespace},
        "spec": body.get("spec"),
    }
    checked = check_connector(manifest, _udf_in_cluster(str(namespace), read_configmap))
    if checked.connector is None or checked.problems:
        raise InvalidSpec(checked.problems)
    udf = checked.connector.spec.transform.udf if checked.connector.spec.transform else None
    from_configmap = udf is not None and udf.config_map_ref is not None
    return ValidSpec(checked.connector, checked.udf_source if from_configmap else None)


def _udf_in_cluster(namespace: str, read_configmap: ReadConfigMap) -> ReadUdfSource:
    def read(udf: Udf, where: FieldPath) -> str | None:
        if udf.file is not None:
            raise SpecError(
                (*where, "file"),
                "a file path only works standalone (sluice run); in the cluster use"
                " configMapRef or source",
            )
        ref = udf.config_map_ref
        assert ref is not None  # the model allows exactly one of the three
        at = (*where, "configMapRef")
        found = read_configmap(namespace, ref.name)
        if found is None:
            raise SpecError(at, f"ConfigMap {namespace}/{ref.name} not found")
        data = found.get("data") or {}
        if ref.key not in data:
            raise SpecError(at, f"ConfigMap {namespace}/{ref.name} has no key {ref.key!r}")
        return str(data[ref.key])

    return read


def check_udf_syntax(source: str, function: str) -> None:
    """The source compiles and binds ``function`` at module level; InvalidSpec otherwise.
    Whether it runs is the runtime's business."""
    try:
        check_udf_source(source, function, ("spec", "transform", "udf"))
    except SpecError as error:
        raise InvalidSpec((error,)) from None
