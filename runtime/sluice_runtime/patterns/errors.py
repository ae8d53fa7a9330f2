"""How an invalid pattern is reported: the path of the offending part and the operator."""

from __future__ import annotations


class InvalidPattern(Exception):
    """Raised while compiling, before the caller's ``where`` prefix is known.

    ``location`` is the path inside the pattern (``value.amount[0]``), ``operator`` the
    operator at fault (``numeric``) or None for structural problems, ``detail`` the rest of
    the sentence (``needs ...``).
    """

    def __init__(
        self, location: str, operator: str | None, detail: str, *, path: str | None = None
    ) -> None:
        super().__init__(detail)
        self.location = location
        self.operator = operator
        self.detail = detail
        self.path = path if path is not None else join_path(location, operator)


class PatternError(ValueError):
    """An invalid event pattern.

    ``path`` names the offending part inside the pattern (``value.amount[0].numeric``);
    ``str(err)`` reads ``filter.pattern.value.amount[0]: numeric needs ...``.
    """

    def __init__(self, where: str, location: str, operator: str | None, detail: str, path: str):
        reason = f"{operator} {detail}" if operator else detail
        message = f"{join_path(where, location)}: {reason}"
        super().__init__(message)
        self.where = where
        self.location = location
        self.operator = operator
        self.path = path
        self.message = message

    @classmethod
    def from_invalid(cls, where: str, invalid: InvalidPattern) -> PatternError:
        return cls(where, invalid.location, invalid.operator, invalid.detail, invalid.path)


def join_path(base: str, part: str | None) -> str:
    """``a`` + ``b`` → ``a.b``; ``a`` + ``[0]`` → ``a[0]``; empty parts vanish."""
    if not part:
        return base
    if not base or part.startswith("["):
        return base + part
    return f"{base}.{part}"
