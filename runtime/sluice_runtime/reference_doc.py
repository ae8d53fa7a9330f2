"""The Connector field reference (docs/reference.md), generated from the spec models so the
documentation cannot drift from what the runtime and the CRD accept.

    python -m sluice_runtime.reference_doc > docs/reference.md
"""

from __future__ import annotations

import types
import typing
from typing import Any, Literal, get_args, get_origin

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from sluice_runtime.config import ConnectorSpec
from sluice_runtime.units import UnitRange

HEADER = """\
# Connector reference

Generated from `runtime/sluice_runtime/config.py` by `python -m sluice_runtime.reference_doc`;
a test fails when this file and the models disagree. Durations are strings with a unit
(`100ms`, `10s`, `5m`, `24h`); sizes are bytes or Kubernetes quantities (`512Ki`, `6Mi`).
Every number has a range, bounds included; the API server, `sluice validate`, the operator
and `sluice run` refuse values outside it (and infinities and NaN).

| field | type | range | default | description |
|---|---|---|---|---|
"""


def _model_of(annotation: Any) -> type[BaseModel] | None:
    for candidate in (annotation, *get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
        if get_origin(candidate) is list:
            inner = _model_of(get_args(candidate)[0])
            if inner is not None:
                return inner
    return None


def _type_name(annotation: Any, metadata: list[Any]) -> str:
    for item in metadata:
        name = type(item).__name__
        if name == "WithJsonSchema":
            schema = item.json_schema or {}
            return "size" if "x-kubernetes-int-or-string" in schema else "duration"
    origin = get_origin(annotation)
    if origin is Literal:
        return " \\| ".join(f"`{value}`" for value in get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        names = [_type_name(arg, []) for arg in get_args(annotation) if arg is not type(None)]
        return " \\| ".join(names)
    if origin is list:
        return f"list of {_type_name(get_args(annotation)[0], [])}"
    if origin is dict:
        return "object"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "object"
    return getattr(annotation, "__name__", str(annotation))


def _default(field: FieldInfo) -> str:
    if field.default is PydanticUndefined:
        return "required" if field.default_factory is None else ""
    if field.default is None:
        return ""
    value = field.default
    for item in field.metadata:
        if type(item).__name__ == "PlainSerializer":
            value = item.func(value)
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


def _range(field: FieldInfo) -> str:
    """The field's bounds as a reader writes them: ``1 to 10 000``, ``0s to 5m``."""
    low = high = ""
    for item in field.metadata:
        if isinstance(item, UnitRange):
            low, high = f"{item.minimum} to ", str(item.maximum)
        elif isinstance(item, annotated_types.Ge):
            low = f"{_number(item.ge)} to "
        elif isinstance(item, annotated_types.Gt):
            low = f"above {_number(item.gt)} up to "
        elif isinstance(item, annotated_types.Le):
            high = _number(item.le)
    return low + high


def _number(value: Any) -> str:
    return f"{value:_}".replace("_", " ")


def rows(model: type[BaseModel], prefix: str) -> list[str]:
    lines = []
    for name, field in model.model_fields.items():
        path = f"{prefix}.{field.alias or name}"
        description = (field.description or "").replace("|", "\\|")
        if not description and (nested := _model_of(field.annotation)) is not None:
            description = (nested.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
        kind = _type_name(field.annotation, list(field.metadata))
        lines.append(f"| `{path}` | {kind} | {_range(field)} | {_default(field)} | {description} |")
        nested = _model_of(field.annotation)
        if nested is not None:
            lines += rows(nested, path)
    return lines


def render() -> str:
    return HEADER + "\n".join(rows(ConnectorSpec, "spec")) + "\n"


if __name__ == "__main__":
    print(render(), end="")
