"""JSON parsing and writing that keep every integer exact, at orjson's speed for the rest.

orjson reads an integer outside [-2**63, 2**64 - 1] as a float (``18446744073709551617``
becomes ``1.8446744073709552e19``) and refuses to write one (``TypeError``). Records carry
such integers (account numbers, 128-bit ids, nanosecond sums), and a filter, transform or
UDF must neither change them nor fail on them.

- :func:`loads` lets orjson decide what is valid JSON and parse it; only when the text holds
  a run of digits long enough to be such an integer does the standard library parse it
  again, with exact integers. Spotting that run costs a fraction of the parse.
- :func:`dumps` is ``orjson.dumps``; only when orjson refuses a wide integer are those
  integers replaced by their exact text (``orjson.Fragment``) and the value written again.
"""

from __future__ import annotations

import json
from typing import Any, Final

import orjson

# Integers orjson reads as integers; beyond them it reads floats and writes nothing.
_SMALLEST: Final = -(2**63)
_LARGEST: Final = 2**64 - 1
# Every integer outside that range has 20 digits or more, or is negative with 19 or more;
# JSON forbids leading zeros, so shorter runs of digits are always within it.
_DIGITS_AS_ZERO: Final = bytes.maketrans(b"123456789", b"000000000")
_RUN_OF_19: Final = b"0" * 19
_WIDE_POSITIVE: Final = b"0" * 20
_WIDE_NEGATIVE: Final = b"-" + b"0" * 19
_WIDE_INTEGER_ERRORS: Final = (
    "Integer exceeds 64-bit range",
    "Dict integer key must be within 64-bit range",
)


def may_hold_wide_integer(raw: bytes) -> bool:
    """Whether ``raw`` has a run of digits that could be an integer orjson reads as a float
    (a long fraction or digits inside a string also answer yes, which only costs time).

    One ``translate`` and one ``find`` for nearly every document (measured with callgrind:
    about 3,000 instructions for a 90-byte record, against 6,300 for ``orjson.loads``);
    the 19-digit runs of nanosecond timestamps are told apart without parsing again.
    """
    if len(raw) < 19:
        return False
    digits = raw.translate(_DIGITS_AS_ZERO)
    if digits.find(_RUN_OF_19) < 0:
        return False
    return digits.find(_WIDE_POSITIVE) >= 0 or digits.find(_WIDE_NEGATIVE) >= 0


def loads(raw: bytes | str) -> Any:
    """``orjson.loads`` (same errors, same accepted documents) with exact integers."""
    value = orjson.loads(raw)
    data = raw.encode() if isinstance(raw, str) else raw
    if not may_hold_wide_integer(data):
        return value
    return exact_reparse(data)


def exact_reparse(raw: bytes) -> Any:
    """``raw``, which orjson has parsed already, parsed again by the standard library,
    whose integers are exact. orjson already accepted the document, so it is UTF-8 without
    NaN or Infinity and its integers are below 1e309. Should the standard library still
    refuse it (nesting near the recursion limit), ValueError: orjson's reading has rounded
    the integers, and a value that changes is worse than a record that fails."""
    try:
        return json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):
        raise ValueError(
            "a document nested too deeply to read its integers beyond 64 bits exactly"
        ) from None


def dumps(value: Any, option: int | None = None) -> bytes:
    """``orjson.dumps`` that also writes integers beyond 64 bits, exactly."""
    try:
        return orjson.dumps(value, option=option)
    except orjson.JSONEncodeError as error:
        if str(error) not in _WIDE_INTEGER_ERRORS:
            raise
        try:
            exact = _wide_integers_as_text(value)
        except RecursionError:
            raise error from None
        return orjson.dumps(exact, option=option)


def _wide_integers_as_text(value: Any) -> Any:
    """A copy of the containers in ``value`` with every integer orjson cannot write replaced
    by its JSON text (a ``Fragment``, which orjson writes as is)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if _SMALLEST <= value <= _LARGEST:
            return value
        return orjson.Fragment(str(int(value)).encode("ascii"))
    if isinstance(value, dict):
        return {_wide_key(key): _wide_integers_as_text(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_wide_integers_as_text(item) for item in value]
    return value


def _wide_key(key: Any) -> Any:
    # Only reachable with OPT_NON_STR_KEYS, which writes integer keys as strings.
    if isinstance(key, int) and not isinstance(key, bool) and not _SMALLEST <= key <= _LARGEST:
        return str(int(key))
    return key
