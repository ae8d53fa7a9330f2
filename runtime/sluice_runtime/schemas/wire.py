"""The registry wire format: byte 0 is the magic byte 0, bytes 1-4 the schema id (big
endian), the rest the encoded payload (Protobuf puts message indexes first)."""

from __future__ import annotations

from typing import Final

MAGIC: Final = 0
HEADER_SIZE: Final = 5

SCHEMA_NOT_FOUND: Final = "SCHEMA_NOT_FOUND"
DESERIALIZATION_ERROR: Final = "DESERIALIZATION_ERROR"


class DecodeError(Exception):
    """A record that cannot be decoded; ``reason`` starts with SCHEMA_NOT_FOUND or
    DESERIALIZATION_ERROR, the ``sluice.error.reason`` of the dead-lettered record."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.reason = f"{code}: {detail}"


def schema_id(raw: bytes) -> int:
    """The schema id in ``raw``'s header; DecodeError when ``raw`` is not in the format."""
    if len(raw) < HEADER_SIZE or raw[0] != MAGIC:
        raise DecodeError(
            DESERIALIZATION_ERROR,
            "not in the schema registry wire format (magic byte 0, 4-byte schema id)",
        )
    return int.from_bytes(raw[1:5], "big")
