"""The two ways a transform fails: when it is compiled, and on one record."""

from __future__ import annotations


class TransformSpecError(ValueError):
    """A transform that cannot be compiled; the message starts with the field at fault,
    e.g. ``transform.template.paths.uid: invalid JSONPath '$.[': ...``."""


class RecordTransformError(Exception):
    """A transform that failed on one record (stage ``transform`` of the failure path).

    ``reason`` is short and on one line, because it ends up in logs, metrics and
    dead-letter headers.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
