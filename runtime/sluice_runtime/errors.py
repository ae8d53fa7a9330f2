"""The errors Sluice raises about what a user wrote, in one hierarchy.

    SluiceError                  anything Sluice refuses, with a message for a person
    ├── SpecError                one problem in a Connector spec, at a field path
    │   ├── PatternError         an event pattern that does not compile (patterns.errors)
    │   └── TransformSpecError   a jsonPath, template or UDF that does not compile
    │                            (transform.errors)
    ├── ManifestError            a manifest that cannot be used: the file cannot be read or
    │   │                        parsed, or its Connector has SpecErrors (all of them, as data)
    │   └── InvalidSpec          the same for a Connector object in the cluster, in one line
    │                            for its status (sluice_operator.validation)
    └── RecordTransformError     a transform that failed on one record (transform.errors);
                                 not about the spec: the record fails in stage ``transform``

A :class:`SpecError` carries its place as data, ``path`` (a tuple of keys and indexes from
the manifest's root, such as ``("spec", "filter", "pattern", "value", "amount", 0)``), and
its ``problem`` as text (``numeric needs a finite number after ">", not "5"``). ``str()``
joins them as ``spec.filter.pattern.value.amount[0]: numeric needs …``. Code that needs the
field (``sluice validate`` looks up its line in the YAML; the operator names it in the
Connector's status) reads ``path``; nothing parses or rewrites message text.

SpecError and ManifestError are also ``ValueError``s, as the errors they replace were.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

FieldPath = tuple[str | int, ...]
"""Keys (str) and list indexes (int) from the manifest's root to a field."""


def format_path(path: Iterable[str | int]) -> str:
    """``("spec", "filter", "patterns", 1, "a")`` → ``spec.filter.patterns[1].a``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text = f"{text}.{part}" if text else part
    return text


def as_path(where: str | Sequence[str | int]) -> FieldPath:
    """A field path from a tuple, or from a dotted name of plain keys (``"filter.pattern"``),
    the form compile functions accept from callers that name a fixed place."""
    if isinstance(where, str):
        return tuple(part for part in where.split(".") if part)
    return tuple(where)


class SluiceError(Exception):
    """Something Sluice refuses; the message is for a person."""

    def __reduce__(self) -> tuple[Any, ...]:
        # Subclasses take other arguments than their message: copies and pickles rebuild
        # the attributes as they are.
        return (_rebuild, (type(self), self.__dict__, self.args))


class SpecError(SluiceError, ValueError):
    """One problem in a Connector spec, at ``path``."""

    def __init__(self, path: Sequence[str | int], problem: str) -> None:
        self.path: FieldPath = tuple(path)
        self.problem = problem
        where = format_path(self.path)
        super().__init__(f"{where}: {problem}" if where else problem)

    @property
    def field(self) -> str:
        """The path as people write it: ``spec.window.maxBytes``."""
        return format_path(self.path)


def _rebuild(cls: type[SluiceError], state: dict[str, Any], args: tuple[Any, ...]) -> SluiceError:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class ManifestError(SluiceError, ValueError):
    """A manifest that cannot be used.

    ``origin`` names it (a file, or "Connector" in the operator); ``problems`` holds every
    SpecError found in its Connector (empty when the file itself is the problem, and then
    ``reason`` says why: cannot read, not YAML, no Connector; ``line`` where, if known).
    """

    def __init__(
        self,
        origin: str,
        problems: Sequence[SpecError] = (),
        reason: str | None = None,
        line: int | None = None,
    ) -> None:
        self.origin = origin
        self.problems: tuple[SpecError, ...] = tuple(problems)
        self.reason = reason
        self.line = line
        if reason is not None:
            message = f"{origin}: {reason}"
        else:
            lines = [f"{origin}: invalid Connector"]
            lines += [f"  {problem}" for problem in self.problems]
            message = "\n".join(lines)
        super().__init__(message)

    def one_line(self) -> str:
        """The message on one line, for commands that promise one."""
        if self.reason is not None:
            return f"{self.origin}: {self.reason}"
        return "; ".join([f"{self.origin}: invalid Connector", *map(str, self.problems)])
