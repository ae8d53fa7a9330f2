"""A lane aborted while a record waits on the failure policy ends quietly: the wait is
abandoned and nothing calls the process's fatal handler (the runtime exits 0, and the
record is read again after restart). The real runtime's stop with the dead-letter topic
down is in test_failure_handling.py; this pins the order of events the abort sets off,
which the event loop decides: the waiting task wakes before the abort cancels it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sluice_runtime.backpressure import ProcessBuffer
from sluice_runtime.config import Buffer, Delivery, Retry, Window
from sluice_runtime.delivery import Deliverer
from sluice_runtime.failures import FailurePolicy
from sluice_runtime.lane import Lane, LaneServices
from sluice_runtime.metrics import Metrics
from sluice_runtime.processors import Processor
from sluice_runtime.ratelimit import AdaptiveLimiter
from sluice_runtime.records import Record, RecordFailure
from sluice_runtime.sink import SendResult


class Control:
    def __init__(self) -> None:
        self.stored: list[int] = []

    def store(self, _topic: str, _partition: int, offset: int) -> None:
        self.stored.append(offset)

    def set_paused(self, _topic: str, _partition: int, _paused: bool) -> None:
        pass


class UnwritableDeadLetters:
    topic = "dlq"

    async def write(self, _record: Record, _failure: RecordFailure) -> str:
        return "broker down"


async def refuse(_events: Any, _prepared: Any) -> SendResult:
    return SendResult(False, 400, "HTTP 400: bad")


async def accept(_events: Any, _prepared: Any) -> SendResult:
    return SendResult(True, 200)


def undecodable(_record: Record) -> RecordFailure:
    return RecordFailure("decode", "not json")


def one_event(_record: Record) -> list[Any]:
    return ["x"]


CASES: dict[str, tuple[Any, Processor, str]] = {
    "dead-letter topic down, deliver stage": (refuse, one_event, "all"),
    "dead-letter topic down, decode stage": (accept, undecodable, "all"),
    "errorTolerance none, decode stage": (accept, undecodable, "none"),
}


@pytest.mark.parametrize("case", CASES)
def test_an_abort_during_a_failure_wait_is_not_fatal(case: str) -> None:
    send, processor, tolerance = CASES[case]

    async def scenario() -> tuple[list[BaseException], list[int]]:
        metrics, abort = Metrics(), asyncio.Event()
        delivery = Delivery(error_tolerance=tolerance, retry=Retry(policy="none", max_delay=0.05))
        failures = FailurePolicy(delivery, UnwritableDeadLetters(), metrics, abort)  # type: ignore[arg-type]
        fatal: list[BaseException] = []
        control = Control()
        services = LaneServices(
            window=Window(max_messages=100, max_interval=0.0),
            delivery=delivery,
            buffer=Buffer(),
            processor=processor,
            deliverer=Deliverer(
                send, delivery, metrics, AdaptiveLimiter(64, None, metrics), failures
            ),
            failures=failures,
            metrics=metrics,
            control=control,
            process_buffer=ProcessBuffer(10_000, 2**30, metrics, lambda _reading: None),
            on_fatal=fatal.append,
        )
        lane = Lane.create("t", 0, services)
        lane.start()
        lane.feed([Record("t", 0, 0, 0, None, b"v", [])])
        await asyncio.sleep(0.2)  # the record waits on the failure policy
        # What DataPlane._shutdown does once the grace period is over.
        handing_back = asyncio.ensure_future(lane.hand_back())
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.shield(handing_back), 0.2)
        abort.set()
        await asyncio.gather(lane.abort())
        await asyncio.sleep(0.05)
        handing_back.cancel()
        return fatal, control.stored

    fatal, stored = asyncio.run(scenario())
    assert fatal == []
    assert stored == []  # nothing committed past the record
