"""The HTTP sink: one request per batch, and a verdict the delivery loop can act on.

The sink does not retry; it classifies. Retryable: connection errors, timeouts, 408, 429
and 5xx (with ``Retry-After`` read). A 2xx answer may name failed items with the Lambda
contract ``{"batchItemFailures": [{"itemIdentifier": "<event id>"}]}``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from time import time

import httpx
import orjson

from sluice_runtime.config import Connector
from sluice_runtime.contract import BEARER_TOKEN_ENV
from sluice_runtime.payload import Request, build_request
from sluice_runtime.records import Deliverable
from sluice_runtime.transport import (
    Answer,
    LeanTransport,
    Timeouts,
    header_lines,
    origin_of,
    request_line,
)

RETRYABLE_STATUS = frozenset({408, 429}) | frozenset(range(500, 600))


@dataclass(frozen=True, slots=True)
class SendResult:
    ok: bool
    status: int | None  # None when no HTTP answer came back
    reason: str = ""
    retryable: bool = False
    retry_after: float | None = None
    failed_ids: frozenset[str] = field(default_factory=frozenset)  # partial failure of a 2xx


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time())
    except (TypeError, ValueError):
        return None


def _failed_ids(answer: Answer) -> frozenset[str]:
    if not answer.content or b"json" not in (answer.header(b"content-type") or b"json"):
        return frozenset()
    try:
        body = orjson.loads(answer.content)
    except orjson.JSONDecodeError:
        return frozenset()
    if not isinstance(body, dict) or not isinstance(body.get("batchItemFailures"), list):
        return frozenset()
    return frozenset(
        str(entry["itemIdentifier"])
        for entry in body["batchItemFailures"]
        if isinstance(entry, dict) and "itemIdentifier" in entry
    )


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")


class HttpSink:
    def __init__(self, connector: Connector, uri: str | None = None, concurrency: int = 64):
        spec = connector.spec.sink
        self.uri = uri or spec.uri or ""
        self.format = spec.format
        self.source = connector.source_uri
        headers = {"user-agent": "sluice", **spec.headers}
        if spec.auth is not None:
            # The token comes from a Secret through the environment; it is never logged.
            token = os.environ.get(BEARER_TOKEN_ENV, "")
            if token:
                headers["authorization"] = f"Bearer {token}"
        # What the payload sets (content-type, and ce-* in binary mode) wins over the spec.
        binary = self.format == "cloudevents-binary"
        overridden = ("content-type", "ce-") if binary else ("content-type",)
        static = [
            (name.encode("latin-1"), value.encode("latin-1"))
            for name, value in headers.items()
            if not name.lower().startswith(overridden)
        ]
        url = httpx.URL(self.uri)
        self._origin = origin_of(url)
        # Requests go straight to the transport with a head written here once but for
        # the content headers and length: httpx's request and response objects (let alone
        # AsyncClient's merging, auth and redirect flows) cost more CPU than the exchange.
        # See sluice_runtime.transport, and make bench's http-client row for the figures.
        self._head_start = request_line("POST", url, static)
        self._timeouts = Timeouts(spec.timeout, spec.timeout, spec.timeout, spec.timeout)
        self._lines_by_type: dict[str, bytes] = {}
        self._transport = LeanTransport(max_connections=concurrency)

    def _content_line(self, content_type: str) -> bytes:
        """The content-type header line, written once per type."""
        line = self._lines_by_type.get(content_type)
        if line is None:
            line = header_lines([(b"content-type", content_type.encode("latin-1"))])
            self._lines_by_type[content_type] = line
        return line

    def prepare(self, events: Sequence[Deliverable]) -> Request:
        """The request for these events, built ahead of sending (see ``send``)."""
        return build_request(events, self.format, self.source)

    async def send(
        self, events: Sequence[Deliverable], prepared: Request | None = None
    ) -> SendResult:
        try:
            payload = prepared if prepared is not None else self.prepare(events)
        except Exception as error:
            # An event that cannot be written in the format (a value nested deeper than the
            # JSON encoder goes, say): the content is at fault, so the batch is bisected
            # down to that record, which takes the failure path.
            return SendResult(False, None, f"payload: {type(error).__name__}: {error}"[:200])
        try:
            body = payload.body
            head = b"%s%s%scontent-length: %d\r\n\r\n" % (
                self._head_start,
                self._content_line(payload.content_type),
                payload.lines,
                len(body),
            )
            answer = await self._transport.exchange(self._origin, head, body, self._timeouts)
        except httpx.TimeoutException as error:
            return SendResult(False, None, f"timeout: {type(error).__name__}", retryable=True)
        except httpx.TransportError as error:
            return SendResult(False, None, f"connection: {error!s}"[:200], retryable=True)
        except Exception as error:
            # Whatever else the client raises is this request's failure, retried like a
            # connection error; it must never take the partition's lane down.
            return SendResult(
                False, None, f"client: {type(error).__name__}: {error}"[:200], retryable=True
            )
        status = answer.status
        if 200 <= status < 300:
            failed = _failed_ids(answer)
            unknown = failed.difference(event.event_id for event in events) if failed else None
            if unknown:
                # As Lambda does with an invalid itemIdentifier: the whole batch failed.
                # Retrying only the named ids would deliver nothing and bisecting would
                # multiply the requests, so the batch is retried as a whole.
                named = ", ".join(sorted(unknown)[:3])
                return SendResult(
                    False,
                    status,
                    f"batchItemFailures names ids that are not in the batch: {named}"[:200],
                    retryable=True,
                )
            if failed:
                return SendResult(
                    False, status, "partial batch failure", retryable=True, failed_ids=failed
                )
            return SendResult(True, status)
        text = answer.content[:200].decode("utf-8", "replace")
        reason = f"HTTP {status}: {text}".strip()
        if status in RETRYABLE_STATUS:
            return SendResult(
                False,
                status,
                reason,
                retryable=True,
                retry_after=parse_retry_after(_text(answer.header(b"retry-after"))),
            )
        return SendResult(False, status, reason)

    async def close(self) -> None:
        await self._transport.aclose()
