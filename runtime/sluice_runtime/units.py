"""Durations (``100ms``, ``10s``, ``5m``, ``24h``) and sizes (Kubernetes quantities such as
``512Ki``, ``6Mi``) as they appear in Connector manifests, and their pydantic field types.

Manifests keep the human strings; the runtime works in seconds and bytes.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Annotated, Any

from pydantic import (
    BeforeValidator,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    PlainSerializer,
    WithJsonSchema,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
DURATION_PATTERN = r"^((\d+(\.\d+)?)(ms|s|m|h))+$"
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}

_QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$")
QUANTITY_PATTERN = r"^\d+(\.\d+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$"
_QUANTITY_FACTOR = {
    None: 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}


# Kubernetes' own Quantity syntax, as kubebuilder writes it for resource.Quantity.
K8S_QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]"
    r"|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
K8S_QUANTITY = re.compile(K8S_QUANTITY_PATTERN)


def show(value: Any, limit: int = 40) -> str:
    """A value for an error message, shortened: a manifest may hold a 400-digit number."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_duration(value: Any) -> float:
    """Seconds in a duration string such as ``1m30s``; numbers are taken as seconds."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as '10s', got {show(value)}")
    if isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError:  # an integer beyond any float
            seconds = math.inf
        if seconds < 0:
            raise ValueError(f"a duration cannot be negative, got {show(value)}")
    elif not isinstance(value, str):
        raise ValueError(f"expected a duration such as '10s', got {show(value)}")
    else:
        text = value.strip()
        if text.startswith("-"):
            raise ValueError(f"a duration cannot be negative, got {show(value)}")
        if not re.fullmatch(DURATION_PATTERN, text):
            raise ValueError(
                f"invalid duration {show(value)}: use a number with a unit (ms, s, m, h), "
                "e.g. '100ms', '10s', '5m'"
            )
        seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))
    if not math.isfinite(seconds):
        raise ValueError(f"a duration must be a finite number of seconds, got {show(value)}")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest exact string for a duration: 0.1 -> '100ms', 90 -> '90s', 3600 -> '1h'."""
    if not math.isfinite(seconds):
        return str(seconds)
    millis = round(seconds * 1000)
    if millis % 3_600_000 == 0 and millis:
        return f"{millis // 3_600_000}h"
    if millis % 60_000 == 0 and millis:
        return f"{millis // 60_000}m"
    if millis % 1000 == 0:
        return f"{millis // 1000}s"
    return f"{millis}ms"


def parse_quantity(value: Any) -> int:
    """Bytes in a Kubernetes quantity such as ``6Mi``; integers are taken as bytes."""
    if isinstance(value, bool):
        raise ValueError(f"expected a size such as '6Mi', got {show(value)}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"a size cannot be negative, got {show(value)}")
        return value
    if not isinstance(value, str) or not (match := _QUANTITY.match(value.strip())):
        raise ValueError(
            f"invalid size {show(value)}: use bytes or a quantity such as '512Ki', '6Mi'"
        )
    number, suffix = match.groups()
    if len(number) > _MAX_QUANTITY_DIGITS:
        raise ValueError(f"size {show(value)} is too large")
    # A Fraction, not a float: exact for every size.
    return int(Fraction(number) * _QUANTITY_FACTOR[suffix])


_MAX_QUANTITY_DIGITS = 30  # far beyond any bound, far below what int() refuses to parse


def format_quantity(size: int) -> str:
    for suffix in ("Ti", "Gi", "Mi", "Ki"):
        factor = _QUANTITY_FACTOR[suffix]
        if size and size % factor == 0:
            return f"{size // factor}{suffix}"
    return str(size)


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN}),
]
"""A duration field: written as '10s' in manifests, held as seconds."""

Quantity = Annotated[
    int,
    BeforeValidator(parse_quantity),
    PlainSerializer(format_quantity, return_type=str),
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string", "pattern": QUANTITY_PATTERN}],
            "x-kubernetes-int-or-string": True,
        }
    ),
]
"""A size field: written as '6Mi' (or plain bytes) in manifests, held as bytes."""


@dataclass(frozen=True)
class UnitRange:
    """Bounds of a duration or size field, written as in manifests (``"5m"``, ``"64Mi"``).

    Used as ``Annotated[Duration, DurationRange("0s", "5m")]``: the model refuses values
    outside with a message in the field's own units, the CRD gets the same bounds as a CEL
    rule, and the reference documents them.
    """

    minimum: str | int
    maximum: str | int

    def parse(self, value: str | int) -> float:
        raise NotImplementedError

    def show(self, value: float) -> str:
        raise NotImplementedError

    def cel_rule(self) -> str:
        raise NotImplementedError

    def check(self, value: float) -> float:
        if not self.parse(self.minimum) <= value <= self.parse(self.maximum):
            raise ValueError(
                f"must be between {self.minimum} and {self.maximum}, got {show(self.show(value))}"
            )
        return value

    def __get_pydantic_core_schema__(
        self, source: type[Any], handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_after_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = dict(handler(schema))
        # Bounds the work of the CEL rule and refuses absurd strings outright.
        json_schema["maxLength"] = _MAX_UNIT_STRING
        json_schema["x-kubernetes-validations"] = [
            {
                "rule": self.cel_rule(),
                "message": f"must be between {self.minimum} and {self.maximum}",
            }
        ]
        return json_schema


_MAX_UNIT_STRING = 32


@dataclass(frozen=True)
class DurationRange(UnitRange):
    """Bounds of a :data:`Duration` field."""

    def parse(self, value: str | int) -> float:
        return parse_duration(value)

    def show(self, value: float) -> str:
        return format_duration(value)

    def cel_rule(self) -> str:
        # Go's duration syntax accepts every string DURATION_PATTERN does.
        return (
            f"duration(self) >= duration('{self.minimum}')"
            f" && duration(self) <= duration('{self.maximum}')"
        )


@dataclass(frozen=True)
class SizeRange(UnitRange):
    """Bounds of a :data:`Quantity` field."""

    def parse(self, value: str | int) -> float:
        return parse_quantity(value)

    def show(self, value: float) -> str:
        return format_quantity(int(value))

    def cel_rule(self) -> str:
        low, high = parse_quantity(self.minimum), parse_quantity(self.maximum)
        # An int-or-string field: plain bytes, or a quantity such as 6Mi (QUANTITY_PATTERN
        # is a subset of Kubernetes' quantity syntax).
        return (
            f"type(self) == int ? self >= {low} && self <= {high}"
            f" : quantity(self).compareTo(quantity('{self.minimum}')) >= 0"
            f" && quantity(self).compareTo(quantity('{self.maximum}')) <= 0"
        )
