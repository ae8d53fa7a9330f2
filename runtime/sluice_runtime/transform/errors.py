"""The two ways a transform fails: when it is compiled, and on one record."""

from __future__ import annotations

from sluice_runtime.errors import SluiceError, SpecError


class TransformSpecError(SpecError):
    """A transform that cannot be compiled: a :class:`SpecError` at the field at fault,
    e.g. ``transform.template.paths.uid: invalid JSONPath '$.[': ...``."""


class RecordTransformError(SluiceError):
    """A transform that failed on one record (stage ``transform`` of the failure path).

    ``reason`` is short and on one line, because it ends up in logs, metrics and
    dead-letter headers.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
