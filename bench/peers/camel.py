"""The Apache Camel peer (kafka → aggregate → http). Not built yet: left out of the rows."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.runtime import Context


def camel_available() -> str | None:
    """Why the Camel peer cannot run here, or None when it can."""
    return "not written yet"


def camel_pass(
    ctx: Context, tag: str, topic: str, records: int, batch: int, interval: float
) -> dict[str, float]:
    raise NotImplementedError
