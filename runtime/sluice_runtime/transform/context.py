"""What a compiled transform knows about the Connector it runs for."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sluice_runtime.config import Connector


@dataclass(frozen=True)
class TransformContext:
    """Connector identity; per-record topic, partition and offset come from the envelope."""

    connector: str
    namespace: str = "default"

    @classmethod
    def for_connector(cls, connector: Connector) -> TransformContext:
        return cls(connector=connector.metadata.name, namespace=connector.metadata.namespace)
