"""``compile_transform``: a Connector's transform spec into a per-record function."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sluice_runtime.config import Transform
from sluice_runtime.errors import as_path
from sluice_runtime.transform.context import TransformContext
from sluice_runtime.transform.errors import RecordTransformError
from sluice_runtime.transform.jsonpath import compile_jsonpath
from sluice_runtime.transform.template import compile_template
from sluice_runtime.transform.udf import compile_udf, load_udf_source

RecordTransform = Callable[[dict[str, Any]], list[Any]]
"""From the record envelope to the event data items to deliver: ``[]`` when a UDF drops
the record, one item normally, several when a UDF fans out."""


def compile_transform(
    spec: Transform | None,
    context: TransformContext,
    udf_source: str | None = None,
    where: str | Sequence[str | int] = "transform",
    *,
    udf_in_worker: bool = False,
) -> RecordTransform:
    """Compile ``spec`` once (TransformSpecError if it cannot be).

    ``udf_source`` is the UDF's source when the caller has read it (from a ConfigMap or a
    file); otherwise inline source is used, or ``udf.file`` is read.
    The returned function raises RecordTransformError when one record fails.
    """
    if spec is None:
        return _whole_envelope
    at = as_path(where)
    if spec.json_path is not None:
        select = compile_jsonpath(spec.json_path, (*at, "jsonPath")).select

        def json_path(envelope: dict[str, Any]) -> list[Any]:
            selected = select(envelope)
            if type(selected) is bytes:
                # Bytes as event data mean JSON text already (records.JsonText): a decoder
                # that left binary data unmapped must not have it written into a request.
                raise RecordTransformError("the path selects binary data, not a JSON value")
            return [selected]

        return json_path
    if spec.template is not None:
        render = compile_template(spec.template, (*at, "template"))

        def template(envelope: dict[str, Any]) -> list[Any]:
            return [render(envelope)]

        return template
    # The Transform model guarantees exactly one kind is set.
    assert spec.udf is not None
    udf_at = (*at, "udf")
    source = udf_source if udf_source is not None else load_udf_source(spec.udf, where=udf_at)
    return compile_udf(source, spec.udf.function, context, udf_at, in_worker=udf_in_worker)


def _whole_envelope(envelope: dict[str, Any]) -> list[Any]:
    return [envelope]
