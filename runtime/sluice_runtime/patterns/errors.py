"""How an invalid pattern is reported: the path of the offending part and the operator."""

from __future__ import annotations

from sluice_runtime.errors import FieldPath, SpecError, format_path

Location = FieldPath
"""A place inside a pattern: keys and array indexes, ``("value", "amount", 0)``."""


class InvalidPattern(Exception):
    """Raised while compiling, before the caller's ``where`` prefix is known.

    ``location`` is the path inside the pattern (``("value", "amount", 0)``), ``operator``
    the operator at fault (``numeric``) or None for structural problems, ``detail`` the rest
    of the sentence (``needs ...``); ``path`` is the location with the operator.
    """

    def __init__(
        self, location: Location, operator: str | None, detail: str, *, path: Location | None = None
    ) -> None:
        super().__init__(detail)
        self.location = location
        self.operator = operator
        self.detail = detail
        self.path = path if path is not None else (*location, *((operator,) if operator else ()))


class PatternError(SpecError):
    """An invalid event pattern: a :class:`SpecError` at ``where`` + the place inside the
    pattern, whose problem starts with the operator at fault.

    ``str(err)`` reads ``filter.pattern.value.amount[0]: numeric needs ...``;
    ``pattern_path`` names the offending part inside the pattern with its operator
    (``value.amount[0].numeric``).
    """

    def __init__(
        self,
        where: FieldPath,
        location: Location,
        operator: str | None,
        detail: str,
        pattern_path: Location = (),
    ) -> None:
        super().__init__((*where, *location), f"{operator} {detail}" if operator else detail)
        self.where = where
        self.location = location
        self.operator = operator
        self.pattern_path = format_path(pattern_path)

    @classmethod
    def from_invalid(cls, where: FieldPath, invalid: InvalidPattern) -> PatternError:
        return cls(where, invalid.location, invalid.operator, invalid.detail, invalid.path)
