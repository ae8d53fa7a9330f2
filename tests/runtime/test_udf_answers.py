"""What the runtime accepts from a UDF's worker: the worker runs user code, so its answer
is checked before anything of it reaches a request."""

from __future__ import annotations

import orjson
import pytest

from sluice_runtime.records import JsonText, RecordFailure
from sluice_runtime.udf_pool import WorkerFailed, _checked
from sluice_runtime.udf_worker import LENGTH, _answer


def events(*encoded: bytes) -> bytes:
    return b"\x00" + LENGTH.pack(len(encoded)) + b"".join(LENGTH.pack(len(e)) + e for e in encoded)


def test_answers_round_trip_as_json_text_and_failures() -> None:
    answer = _answer([{"a": 1}, [2]]) + _answer([]) + _answer(RecordFailure("filter", "bad"))
    first, filtered, failed = _checked(answer, 3)
    assert isinstance(first, list)
    assert all(isinstance(event, JsonText) for event in first)
    assert [orjson.loads(event.text) for event in first] == [{"a": 1}, [2]]
    assert filtered == []
    assert failed == RecordFailure("filter", "bad")


def test_a_value_that_is_not_json_fails_only_its_record() -> None:
    (failed,) = _checked(_answer([{1, 2}]), 1)
    assert isinstance(failed, RecordFailure)
    assert failed.stage == "transform"
    assert "not JSON-serialisable" in failed.reason


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
