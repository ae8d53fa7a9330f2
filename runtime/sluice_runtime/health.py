"""What one runtime process can tell about its delivery, for people and for the operator.

The process serves it as JSON on ``/status`` (``contract.STATUS_PATH``) on its metrics
port, and ``sluice run`` logs it whenever what it says changes. The operator reads it from
every pod on its periodic re-check and turns it into the Connector's conditions and
figures (``sluice_operator.pod_health``): so the data plane's state reaches
``kubectl get`` without the pods needing any rights on the API server.

    FailurePolicy.hold ─────▶ blocked partitions (offset, since, last error)
    FailurePolicy.settle ───▶ dead-letter queue unavailable since / written again
    Deliverer._send ────────▶ sink answers per second: ok, failed, throttled, rejected
    DataPlane (rebalance) ──▶ rebalances
    DataPlane (heartbeat) ──▶ snapshot(): rates over the last WINDOW seconds, the oldest
                              record held and not yet settled

Every call comes from the event loop; the HTTP thread only reads the last snapshot (one
reference, swapped whole), so nothing here needs a lock.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from sluice_runtime.records import RecordFailure

WINDOW = 60.0
"""Seconds over which the sink's answers and the rates are counted."""
REBALANCE_WINDOW = 300.0
"""Seconds over which rebalances are counted."""
REBALANCE_EPISODE = 10.0
"""Assignment changes closer together than this are one rebalance (cooperative rebalancing
revokes and assigns in several callbacks)."""
THROTTLING = frozenset({429, 503})
"""Answers that ask for less traffic: more pods would only make them worse."""


def utc_text(wall: float) -> str:
    """RFC 3339 in UTC to the second, as Kubernetes writes times."""
    return datetime.fromtimestamp(wall, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class BlockedPartition(_Model):
    """A partition waiting at one record (errorTolerance none)."""

    topic: str
    partition: int
    offset: int
    since: str = Field(description="When the partition started waiting (RFC 3339).")
    stage: str = Field(description="decode, filter, transform or deliver.")
    error: str = Field(description="The last reason the record failed.")


class SinkAnswers(_Model):
    """The function's answers over the last ``windowSeconds``: ``requests`` in all, of
    which ``failed`` (5xx but 503, timeouts, refused connections), ``throttled`` (429, 503)
    and ``rejected`` (4xx and partial failures: the record's fault, not the sink's)."""

    requests: int = 0
    failed: int = 0
    throttled: int = 0
    rejected: int = 0
    last_error: str | None = None


class RuntimeHealth(_Model):
    """One process's account of its delivery."""

    window_seconds: float = WINDOW
    partitions: int = Field(default=0, description="Partitions assigned to the process.")
    blocked: list[BlockedPartition] = Field(default_factory=list)
    sink: SinkAnswers = Field(default_factory=SinkAnswers)
    dead_letter_unavailable_since: str | None = None
    dead_letter_error: str | None = None
    delivered_per_second: float = Field(default=0.0, description="Events the function took.")
    dead_lettered: int = Field(default=0, description="Records dead-lettered in the window.")
    oldest_undelivered_seconds: float | None = Field(
        default=None,
        description="Age (from its Kafka timestamp) of the oldest record read and not yet "
        "settled; None when the process holds none.",
    )
    rebalances: int = Field(default=0, description="Rebalances in the last 5 minutes.")

    def summary(self) -> str:
        """One line for the log: what is wrong, or that nothing is."""
        problems = [
            f"{b.topic}-{b.partition} blocked at offset {b.offset} since {b.since}: {b.error}"
            for b in self.blocked
        ]
        if self.dead_letter_unavailable_since is not None:
            problems.append(
                f"dead-letter queue unavailable since {self.dead_letter_unavailable_since}:"
                f" {self.dead_letter_error}"
            )
        if self.sink.failed:
            problems.append(
                f"sink failed {self.sink.failed} of {self.sink.requests} requests in"
                f" {self.window_seconds:g}s: {self.sink.last_error}"
            )
        if self.sink.throttled:
            problems.append(f"sink throttled {self.sink.throttled} of {self.sink.requests}")
        return "; ".join(problems) or "delivering normally"


@dataclass
class _Second:
    at: int
    requests: int = 0
    failed: int = 0
    throttled: int = 0
    rejected: int = 0


class HealthTracker:
    def __init__(self) -> None:
        self._blocked: dict[int, BlockedPartition] = {}
        self._next_token = 0
        self._seconds: deque[_Second] = deque()
        self._last_error: str | None = None
        self._dead_letter_since: float | None = None
        self._dead_letter_error: str | None = None
        self._rebalances: deque[float] = deque()
        self._samples: deque[tuple[float, float, float]] = deque()  # (mono, delivered, dlq)
        self.last: RuntimeHealth = RuntimeHealth()
        self.last_json: bytes = self.last.model_dump_json(by_alias=True).encode()

    # What the data plane reports.

    def blocked(self, topic: str, partition: int, offset: int, failure: RecordFailure) -> int:
        """A partition started waiting at a record; returns the token for ``unblocked``."""
        self._next_token += 1
        self._blocked[self._next_token] = BlockedPartition(
            topic=topic,
            partition=partition,
            offset=offset,
            since=utc_text(time.time()),
            stage=failure.stage,
            error=failure.reason,
        )
        return self._next_token

    def unblocked(self, token: int) -> None:
        self._blocked.pop(token, None)

    def sink_answered(self, status: int | None, ok: bool, reason: str) -> None:
        now = int(time.monotonic())
        seconds = self._seconds
        if not seconds or seconds[-1].at != now:
            seconds.append(_Second(now))
            while seconds[0].at <= now - WINDOW:
                seconds.popleft()
        second = seconds[-1]
        second.requests += 1
        if ok:
            return
        if status in THROTTLING:
            second.throttled += 1
        elif status is None or status >= 500:
            second.failed += 1
        else:
            second.rejected += 1
        self._last_error = reason

    def dead_letter_failed(self, error: str) -> None:
        if self._dead_letter_since is None:
            self._dead_letter_since = time.time()
        self._dead_letter_error = error

    def dead_letter_written(self) -> None:
        self._dead_letter_since = None
        self._dead_letter_error = None

    def rebalanced(self) -> None:
        now = time.monotonic()
        if not self._rebalances or now - self._rebalances[-1] > REBALANCE_EPISODE:
            self._rebalances.append(now)
        else:
            self._rebalances[-1] = now  # the same episode, still going on

    # What the process says.

    def snapshot(
        self,
        partitions: int,
        oldest_timestamp_ms: int | None,
        delivered_total: float,
        dead_lettered_total: float,
    ) -> RuntimeHealth:
        """The process's health now; also kept (and its JSON) for the HTTP thread."""
        mono = time.monotonic()
        samples = self._samples
        samples.append((mono, delivered_total, dead_lettered_total))
        while len(samples) > 2 and samples[1][0] <= mono - WINDOW:
            samples.popleft()
        first = samples[0]
        elapsed = mono - first[0]
        rate = (delivered_total - first[1]) / elapsed if elapsed > 0 else 0.0
        while self._seconds and self._seconds[0].at <= int(mono) - WINDOW:
            self._seconds.popleft()
        while self._rebalances and self._rebalances[0] <= mono - REBALANCE_WINDOW:
            self._rebalances.popleft()
        sink = SinkAnswers(
            requests=sum(s.requests for s in self._seconds),
            failed=sum(s.failed for s in self._seconds),
            throttled=sum(s.throttled for s in self._seconds),
            rejected=sum(s.rejected for s in self._seconds),
            last_error=self._last_error if self._seconds else None,
        )
        oldest = (
            max(0.0, round(time.time() - oldest_timestamp_ms / 1000, 1))
            if oldest_timestamp_ms is not None
            else None
        )
        health = RuntimeHealth(
            partitions=partitions,
            blocked=sorted(self._blocked.values(), key=lambda b: (b.topic, b.partition)),
            sink=sink,
            dead_letter_unavailable_since=(
                utc_text(self._dead_letter_since) if self._dead_letter_since is not None else None
            ),
            dead_letter_error=self._dead_letter_error,
            delivered_per_second=round(rate, 2),
            dead_lettered=int(dead_lettered_total - first[2]),
            oldest_undelivered_seconds=oldest,
            rebalances=len(self._rebalances),
        )
        self.last = health
        self.last_json = health.model_dump_json(by_alias=True).encode()
        return health
