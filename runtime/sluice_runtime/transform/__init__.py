"""Record transforms: jsonPath, template and UDF, compiled once per Connector."""

from sluice_runtime.transform.cli import run_test_transform
from sluice_runtime.transform.compiler import RecordTransform, compile_transform
from sluice_runtime.transform.context import TransformContext
from sluice_runtime.transform.errors import RecordTransformError, TransformSpecError
from sluice_runtime.transform.jsonpath import JsonPath, compile_jsonpath
from sluice_runtime.transform.template import compile_template
from sluice_runtime.transform.udf import (
    UdfContext,
    compile_udf,
    compile_udf_source,
    load_udf_source,
)

__all__ = [
    "JsonPath",
    "RecordTransform",
    "RecordTransformError",
    "TransformContext",
    "TransformSpecError",
    "UdfContext",
    "compile_jsonpath",
    "compile_template",
    "compile_transform",
    "compile_udf",
    "compile_udf_source",
    "load_udf_source",
    "run_test_transform",
]
