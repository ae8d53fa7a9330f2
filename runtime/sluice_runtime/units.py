"""Durations (``100ms``, ``10s``, ``5m``, ``24h``) and sizes (Kubernetes quantities such as
``512Ki``, ``6Mi``) as they appear in Connector manifests, and their pydantic field types.

Manifests keep the human strings; the runtime works in seconds and bytes.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

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


def parse_duration(value: Any) -> float:
    """Seconds in a duration string such as ``1m30s``; numbers are taken as seconds."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as '10s', got {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"a duration cannot be negative, got {value!r}")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"expected a duration such as '10s', got {value!r}")
    text = value.strip()
    if text.startswith("-"):
        raise ValueError(f"a duration cannot be negative, got {value!r}")
    if not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(
            f"invalid duration {value!r}: use a number with a unit (ms, s, m, h), "
            "e.g. '100ms', '10s', '5m'"
        )
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))


def format_duration(seconds: float) -> str:
    """The shortest exact string for a duration: 0.1 -> '100ms', 90 -> '90s', 3600 -> '1h'."""
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
        raise ValueError(f"expected a size such as '6Mi', got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"a size cannot be negative, got {value!r}")
        return value
    if not isinstance(value, str) or not (match := _QUANTITY.match(value.strip())):
        raise ValueError(f"invalid size {value!r}: use bytes or a quantity such as '512Ki', '6Mi'")
    number, suffix = match.groups()
    return int(float(number) * _QUANTITY_FACTOR[suffix])


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
