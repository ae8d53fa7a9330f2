"""The one check of a Connector spec, used by ``sluice validate`` and by the operator.

It finds every problem in one run, each a :class:`SpecError` at its field:

1. the schema (the pydantic models, which the CRD's schema and CEL rules restate),
   bounds on every number and on the size and depth of patterns included;
2. what the schema cannot judge, section by section, so that a problem in one section
   never hides one in another (a bad pattern and ``maxMessages: 0`` are both reported):
   patterns compile; JSONPaths and templates compile; a UDF's source parses, compiles and
   binds its function at module level; ``runtime.resources`` are Kubernetes quantities.

A UDF is never run here: its module code could do anything with the credentials of the
process checking it (a CI job validating pull requests, the operator). ``compile()`` only
turns source into a code object; nothing of it executes until ``sluice run`` loads it.

Where the UDF's source comes from differs (a file beside the manifest for ``validate``,
a ConfigMap for the operator), so the caller passes a :data:`ReadUdfSource`.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from pydantic import BaseModel, ValidationError

from sluice_runtime.config import Connector, Filter, Runtime, Transform, Udf, spec_errors
from sluice_runtime.errors import FieldPath, SpecError
from sluice_runtime.patterns import compile_pattern, compile_patterns
from sluice_runtime.transform import (
    TransformSpecError,
    compile_jsonpath,
    compile_template,
    compile_udf_source,
)
from sluice_runtime.units import K8S_QUANTITY, show

ReadUdfSource = Callable[[Udf, FieldPath], str | None]
"""The source of a UDF given by ``file`` or ``configMapRef``, for the ``udf`` field at the
given path; None when it cannot be read here (a ConfigMap, offline). Raises SpecError when
it should be readable and is not."""

SPEC: Final[FieldPath] = ("spec",)


@dataclass(frozen=True)
class CheckedSpec:
    """The outcome of :func:`check_connector`."""

    connector: Connector | None
    """The loaded Connector; None when the schema refused it."""
    problems: tuple[SpecError, ...]
    """Every problem found, in the order of the manifest's sections."""
    udf_source: str | None
    """The UDF's source as read by the caller's reader (None when there is no UDF)."""

    @property
    def valid(self) -> bool:
        return self.connector is not None and not self.problems


def check_connector(manifest: Any, read_udf_source: ReadUdfSource) -> CheckedSpec:
    """Every problem of one Connector manifest (a mapping with apiVersion, kind, metadata,
    spec); never raises for what the manifest holds."""
    problems: list[SpecError] = []
    connector: Connector | None = None
    try:
        connector = Connector.model_validate(manifest)
    except ValidationError as error:
        problems += spec_errors(error)

    raw_spec = manifest.get("spec") if isinstance(manifest, dict) else None
    raw_spec = raw_spec if isinstance(raw_spec, dict) else {}

    def section(model: type[_Section], key: str) -> _Section | None:
        """A section of the spec as its model, when it is present and valid on its own
        (a section the schema refused is reported already)."""
        if connector is not None:
            return getattr(connector.spec, key)  # type: ignore[no-any-return]
        raw = raw_spec.get(key)
        if raw is None:
            return None
        try:
            return model.model_validate(raw)
        except ValidationError:
            return None

    filter_spec = section(Filter, "filter")
    if filter_spec is not None:
        problems += check_filter(filter_spec, (*SPEC, "filter"))
    udf_source: str | None = None
    transform = section(Transform, "transform")
    if transform is not None:
        transform_problems, udf_source = check_transform(
            transform, (*SPEC, "transform"), read_udf_source
        )
        problems += transform_problems
    runtime = section(Runtime, "runtime")
    if runtime is not None and runtime.resources is not None:
        problems += check_resources(runtime.resources, (*SPEC, "runtime", "resources"))
    return CheckedSpec(connector, tuple(problems), udf_source)


_Section = TypeVar("_Section", bound=BaseModel)


def check_filter(spec: Filter, where: FieldPath) -> list[SpecError]:
    """The pattern(s) compile. The model has bounded their depth and size already, so the
    (recursive) compiler cannot run out of stack or time."""
    try:
        if spec.pattern is not None:
            compile_pattern(spec.pattern, (*where, "pattern"))
        elif spec.patterns is not None:
            compile_patterns(spec.patterns, (*where, "patterns"))
    except SpecError as error:
        return [error]
    return []


def check_transform(
    spec: Transform, where: FieldPath, read_udf_source: ReadUdfSource
) -> tuple[list[SpecError], str | None]:
    """(problems, the UDF's source if there is a UDF and it could be read)."""
    try:
        if spec.json_path is not None:
            compile_jsonpath(spec.json_path, (*where, "jsonPath"))
        elif spec.template is not None:
            compile_template(spec.template, (*where, "template"))
        elif spec.udf is not None:
            udf_where = (*where, "udf")
            udf = spec.udf
            source = udf.source if udf.source is not None else read_udf_source(udf, udf_where)
            if source is not None:
                check_udf_source(source, udf.function, udf_where)
            return [], source
    except SpecError as error:
        return [error], None
    return [], None


def check_udf_source(source: str, function: str, where: FieldPath) -> None:
    """The source compiles and binds ``function`` at module level (a def, an assignment or
    an import); TransformSpecError otherwise. Nothing of it runs: whether it works on a
    record is for ``sluice test-transform`` and the runtime."""
    compile_udf_source(source, where)  # what the runtime compiles: syntax and scoping
    try:
        tree = ast.parse(source, "<udf>")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as error:
        # compile() accepted it, so this is the AST's own nesting limit.
        raise TransformSpecError(where, f"does not parse: {type(error).__name__}") from None
    if function not in _module_names(tree):
        raise TransformSpecError(where, f"no function {function} defined at module level")


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


def check_resources(resources: dict[str, Any], where: FieldPath) -> list[SpecError]:
    """A container's requests and limits: what the Deployment would be rejected for."""
    problems = []
    for section, values in resources.items():
        if section not in ("requests", "limits"):
            problems.append(SpecError(where, f"unknown field {section!r} (requests or limits)"))
            continue
        if not isinstance(values, dict):
            problems.append(SpecError((*where, section), "must map resource names to quantities"))
            continue
        for resource, quantity in values.items():
            text = str(quantity) if isinstance(quantity, int | float) else quantity
            if (
                isinstance(quantity, bool)
                or not isinstance(text, str)
                or not K8S_QUANTITY.match(text)
            ):
                shown = show(quantity) if not isinstance(quantity, dict | list) else "an object"
                problems.append(
                    SpecError(
                        (*where, section, str(resource)),
                        f"{shown} is not a quantity (such as 250m, 1, 512Mi)",
                    )
                )
    return problems
