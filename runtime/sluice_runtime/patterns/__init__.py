"""EventBridge event patterns over the record envelope, compiled once into fast matchers.

``compile_pattern(pattern)`` validates a pattern (raising :class:`PatternError`, which names
the offending path and operator) and returns ``matches(event) -> bool``;
``compile_patterns`` is any-of; ``run_test_pattern`` is the ``sluice test-pattern`` command.

Semantics are Amazon EventBridge's, plus Alibaba EventBridge's ``contains``. Where the
documentation leaves room, this package decides:

- ``exists`` looks at leaf values only: ``exists: true`` matches any present leaf value,
  ``null`` included; an object, an empty array or an array of only objects is no leaf, so
  ``exists: false`` matches it (as it matches a missing field).
- A nested pattern against an array of objects matches when one object matches all of it,
  ``$or`` and ``exists: false`` included: fields never combine across array elements.
- ``anything-but`` needs a present leaf value and accepts every value not described, of any
  kind: ``{"anything-but": "x"}`` matches ``null`` and ``5``; ``{"anything-but": {"prefix":
  "x"}}`` matches every non-string.
- Strings, numbers, booleans and ``null`` never equal one another (``true`` is not ``1``);
  numbers compare by value (``300 == 300.0 == 3e2``), with Python's exact int/float
  comparison and no range limit. ``numeric`` and ``cidr`` never match strings of digits or
  booleans; ``cidr`` needs a prefix length and accepts host bits (``10.0.0.7/24``).
- ``equals-ignore-case`` (alone and inside prefix/suffix/anything-but) compares
  ``str.lower()`` of both sides.
- An empty pattern object, an empty match array and an empty ``anything-but`` list are
  rejected rather than read as "match everything" or "match nothing".
"""

from sluice_runtime.patterns.cli import run_test_pattern
from sluice_runtime.patterns.compile import compile_pattern, compile_patterns
from sluice_runtime.patterns.errors import PatternError

__all__ = ["PatternError", "compile_pattern", "compile_patterns", "run_test_pattern"]
