"""What the runtime accepts from a UDF's worker: the worker runs user code, so its answer
is checked before anything of it reaches a request."""

from __future__ import annotations

import orjson
import pytest

from sluice_runtime.processors import Processed
from sluice_runtime.records import JsonText, Record, RecordFailure
from sluice_runtime.udf_pool import WorkerFailed, _checked
from sluice_runtime.udf_worker import LENGTH, ONE_EACH, _answer, chunk_answer


def events(*encoded: bytes) -> bytes:
    return b"\x00" + LENGTH.pack(len(encoded)) + b"".join(LENGTH.pack(len(e)) + e for e in encoded)


def test_answers_round_trip_as_json_text_and_failures() -> None:
    answer = _answer([{"a": 1}, [2]]) + _answer([]) + _answer(RecordFailure("filter", "bad"))
    first, filtered, failed = _checked(answer, 3)
    assert isinstance(first, list)
    assert all(isinstance(event, JsonText) for event in first)
    assert [orjson.loads(event) for event in first] == [{"a": 1}, [2]]
    assert filtered == []
    assert failed == RecordFailure("filter", "bad")


def test_a_value_that_is_not_json_fails_only_its_record() -> None:
    (failed,) = _checked(_answer([{1, 2}]), 1)
    assert isinstance(failed, RecordFailure)
    assert failed.stage == "transform"
    assert "not JSON-serialisable" in failed.reason


def one_each(*encoded: bytes) -> bytes:
    return ONE_EACH + b"".join(LENGTH.pack(len(e)) for e in encoded) + b"".join(encoded)


def texts(produced: Processed) -> list[bytes]:
    """The events a record produced: JSON text (``JsonText``, plain bytes) each."""
    assert isinstance(produced, list)
    assert all(type(event) is JsonText for event in produced)
    return [bytes(event) for event in produced]


def fields(offset: int) -> tuple[object, ...]:
    return ("t", 0, offset, 0, None, b"%d" % offset, ())


def test_a_chunk_of_one_event_each_is_answered_compactly_and_read_back_exactly() -> None:
    wide = 18446744073709551617  # simdjson refuses it; orjson must be asked again
    answer = chunk_answer(lambda r: [{"n": r.offset, "wide": wide}], [fields(1), fields(2)])
    assert answer[:1] == ONE_EACH
    assert [texts(produced) for produced in _checked(answer, 2)] == [
        [b'{"n":1,"wide":18446744073709551617}'],
        [b'{"n":2,"wide":18446744073709551617}'],
    ]


def test_a_chunk_switches_to_an_answer_per_record_at_the_first_record_that_differs() -> None:
    def process(record: Record) -> list[object] | RecordFailure:
        if record.offset == 2:
            return []
        if record.offset == 3:
            return RecordFailure("filter", "bad")
        return [record.offset] * (2 if record.offset == 4 else 1)

    answer = chunk_answer(process, [fields(n) for n in (1, 2, 3, 4, 5)])
    assert answer[:1] != ONE_EACH
    results = _checked(answer, 5)
    assert results[1] == []
    assert results[2] == RecordFailure("filter", "bad")
    assert [texts(results[n]) for n in (0, 3, 4)] == [[b"1"], [b"4", b"4"], [b"5"]]


@pytest.mark.parametrize(
    "answer",
    [
        one_each(b'1},{"id":"forged"'),
        one_each(b"1,2"),
        one_each(b""),
        one_each(b'{"a": 1}')[:-2],  # truncated
        ONE_EACH + LENGTH.pack(2),  # fewer lengths than records
        one_each(b"1") + b"2",  # more than was announced
    ],
)
def test_a_compact_answer_that_is_not_an_answer_is_the_workers_failure(answer: bytes) -> None:
    with pytest.raises(WorkerFailed):
        _checked(answer, 1)


@pytest.mark.parametrize(
    "answer",
    [
        events(b'1},{"id":"forged"'),  # would smuggle an event into the batch
        events(b"1,2"),
        events(b""),
        events(b'{"a": 1}')[:-2],  # truncated
        events(b"1") + events(b"2"),  # more answers than records
        b"\x07",  # not a kind of answer
    ],
)
def test_an_answer_that_is_not_an_answer_is_the_workers_failure(answer: bytes) -> None:
    with pytest.raises(WorkerFailed):
        _checked(answer, 1)
