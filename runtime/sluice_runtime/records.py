"""The types a record passes through on its way from Kafka to the function, and the
contract between the pipeline and the source that read it.

    Record ──processor──▶ Event(s) ──window──▶ Batch ──sink──▶ delivered
       │                                              └──────▶ RecordFailure
       └── its fate is one Outcome, kept by the partition's ledger (ledger.py)

A record is read once (``Record``), turned by the processors into the events to deliver
(``Event``: a record may fan out to several, or to none when filtered), grouped into a
``Batch`` by the window, and sent. Every record ends in exactly one ``Outcome``; only then
may its offset be committed, and only once every record before it has ended too.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

Stage = Literal["decode", "filter", "transform", "deliver"]
"""Where a record failed; also the ``sluice.error.stage`` header of a dead-lettered record."""


class _Envelope:
    """Event data meaning "this record's envelope", encoded only when the request is built.

    The pipeline's fast path when nothing reads the envelope in Python (no filter, no
    transform): the payload writes the envelope straight into the request body, embedding
    the value as the bytes Kafka returned, with no dict or intermediate bytes per record.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "ENVELOPE"


ENVELOPE = _Envelope()


JsonText = bytes
"""Event data that is one JSON document already (a UDF's answer, checked by the UDF pool):
written into request bodies as these bytes, never parsed or serialised again.

Plain ``bytes`` mark it, because nothing else a record can produce is bytes: decoders,
filters, templates, JSONPath and in-process UDFs all give JSON values (binary data is
base64 text, and a JSONPath that still selects bytes fails its record). The UDF pool makes
one for every record a UDF transforms, as a slice of the worker's answer; a subclass of
bytes cost three to four times as much to make."""


@dataclass(slots=True, init=False)
class Record:
    """One Kafka record as read.

    A record that passes through unchanged is its own event (``Deliverable``: its data is
    its envelope, its index 0), so the lane makes no ``Event`` object for it.
    """

    topic: str
    partition: int
    offset: int
    timestamp: int  # milliseconds since the epoch
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes | None]]
    size: int  # bytes of key and value, used by every buffer bound

    # Written out rather than generated with __post_init__: one call less per record read.
    def __init__(
        self,
        topic: str,
        partition: int,
        offset: int,
        timestamp: int,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes | None]] | None = None,
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.timestamp = timestamp
        self.key = key
        self.value = value
        self.headers = headers if headers is not None else ()  # not a new list per record
        self.size = (len(value) if value else 0) + (len(key) if key else 0)

    @property
    def event_id(self) -> str:
        return f"{self.topic}-{self.partition}-{self.offset}"

    # As a pass-through event (Deliverable).
    @property
    def record(self) -> Record:
        return self

    @property
    def data(self) -> Any:
        return ENVELOPE

    @property
    def index(self) -> int:
        return 0


class Deliverable(Protocol):
    """What the window, the payload, delivery and the ledger read of an event: an
    ``Event``, or a ``Record`` passing through unchanged."""

    @property
    def record(self) -> Record: ...

    @property
    def data(self) -> Any: ...

    @property
    def index(self) -> int: ...

    @property
    def event_id(self) -> str: ...


@dataclass(slots=True)
class Event:
    """One event to deliver: the data a record produced (a record may produce several)."""

    record: Record
    data: Any
    index: int = 0  # position among the events one record fanned out to

    @property
    def event_id(self) -> str:
        base = self.record.event_id
        return base if self.index == 0 else f"{base}-{self.index}"


@dataclass(slots=True)
class Batch:
    events: list[Deliverable]
    trigger: str  # count | bytes | interval | drain
    size: int = 0


@dataclass(frozen=True, slots=True)
class RecordFailure:
    """Why a record could not be delivered: data on the record, never an exception that
    reaches the lane."""

    stage: Stage
    reason: str
    status: int | None = None  # the function's HTTP status, when it answered
    attempts: int = 0


class Outcome(enum.Enum):
    """How a record's journey ended. Each of these, and only these, lets its offset be
    committed."""

    FILTERED = "filtered"  # the filter or a UDF chose not to deliver it
    DELIVERED = "delivered"  # the function accepted every event it produced
    DEAD_LETTERED = "dead-lettered"  # failed for good; the broker confirmed the DLQ write
    DROPPED = "dropped"  # failed for good with no DLQ set (errorTolerance all): counted


class Stopping(Exception):
    """Raised out of a wait (a retry, a blocked partition, a DLQ outage) when the runtime
    aborts: the record stays unacknowledged and is read again after a restart."""


class PartitionControl(Protocol):
    """What the pipeline tells the source about one of its partitions. Called on the event
    loop; the source applies it on its own thread."""

    def store(self, topic: str, partition: int, next_offset: int) -> None:
        """Every record below ``next_offset`` has an Outcome: it may be committed."""

    def set_paused(self, topic: str, partition: int, paused: bool) -> None:
        """Stop or go on fetching the partition (its lane is full, or has room again)."""
