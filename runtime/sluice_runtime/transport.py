"""A lean HTTP/1.1 transport for httpx: keep-alive connections on asyncio protocols, with
httptools (llhttp, the parser Node.js uses) reading the responses.

The sink posts one body per batch and reads a short answer, hundreds or thousands of times
a second from one event loop. httpx's own transport and httpx-aiohttp cost 150-300 µs of
CPU per request there (``make bench``'s http-client row); this one costs a fraction of
that, which matters because the runtime's CPU is shared by every record. It keeps the
httpx API: requests and responses are ``httpx.Request`` and ``httpx.Response``, and
failures are httpx's exception types, so the sink reads like any httpx code.

Scope, on purpose: HTTP/1.1 over TCP or TLS, no proxies, no pipelining, no 100-continue;
the response body is read whole, up to ``MAX_ANSWER_BYTES``: function answers are small
(``batchItemFailures`` at most), and a function that answers with gigabytes must not take
the runtime's memory with it. Timeouts follow httpx's
``request.extensions["timeout"]``: ``pool`` to get a connection, ``connect`` to open one,
``write`` while the kernel's send buffer is full, and ``read`` for the whole answer.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections import deque
from collections.abc import Iterable
from typing import Any, NamedTuple, cast

import httptools
import httpx

DEFAULT_TIMEOUT = 30.0
MAX_ANSWER_BYTES = 1 << 20


class AnswerTooLarge(httpx.RemoteProtocolError):
    """The server's answer body is larger than the transport reads."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection; at most one request at a time."""

    def __init__(self, max_answer_bytes: int = MAX_ANSWER_BYTES) -> None:
        self.max_answer_bytes = max_answer_bytes
        self._body_bytes = 0
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._waiter: asyncio.Future[None] | None = None  # the answer being read
        self._drained: asyncio.Future[None] | None = None  # set while writing is paused
        self._paused = False
        self._parser: httptools.HttpResponseParser | None = None
        self._status = 0
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._headers_done = False
        self._complete = False
        self._keep_alive = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not an isinstance check: uvloop's transports (the runtime's loop) do not
        # subclass asyncio.Transport, though they are one.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        parser = self._parser
        if parser is None:  # bytes nobody asked for: the connection cannot be trusted
            self._fail(httpx.RemoteProtocolError("unexpected data from the server"))
            return
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(httpx.RemoteProtocolError("the server switched protocols"))
        except httptools.HttpParserError as error:
            self._fail(httpx.RemoteProtocolError(f"invalid HTTP response: {error}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        # A body without a length ends with the connection (RFC 9112 section 6.3).
        if self._headers_done and not self._complete and not self._has_length():
            self._finish(keep_alive=False)
            return
        self._fail(httpx.RemoteProtocolError("the server closed the connection mid-answer"))

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    # httptools callbacks
    def on_status(self, _reason: bytes) -> None:
        assert self._parser is not None
        self._status = self._parser.get_status_code()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._headers_done = True

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        if self._body_bytes > self.max_answer_bytes:
            # Stop reading: the connection is closed, what came so far is dropped.
            self._fail(AnswerTooLarge(f"the answer is larger than {self.max_answer_bytes} bytes"))
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        assert self._parser is not None
        if self._status < 200:  # an interim answer (1xx): the real one follows
            self._reset_answer()
            return
        self._finish(keep_alive=self._parser.should_keep_alive())

    # the request side
    async def exchange(
        self, head: bytes, body: bytes, write_timeout: float | None, read_timeout: float | None
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes, bool]:
        """Send one request; returns (status, headers, body, connection reusable)."""
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        self._reset_answer()
        self._parser = httptools.HttpResponseParser(self)
        self._waiter = loop.create_future()
        self.transport.write(head + body if len(body) < 65536 else head)
        if len(body) >= 65536:
            self.transport.write(body)  # no copy of a large body just to prepend the head
        if self._paused:
            self._drained = loop.create_future()
            try:
                async with asyncio.timeout(write_timeout):
                    await self._drained
            except TimeoutError:
                self.close()
                raise httpx.WriteTimeout("timed out sending the request") from None
            finally:
                self._drained = None
        # A timer that fails the answer's future, rather than asyncio.timeout: the same
        # deadline for a third of the event loop's work, and this runs for every request.
        timer = (
            None if read_timeout is None else loop.call_later(read_timeout, self._read_timed_out)
        )
        try:
            await self._waiter
        finally:
            if timer is not None:
                timer.cancel()
            self._waiter = None
            self._parser = None
        return self._status, self._headers, b"".join(self._body), self._keep_alive

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _has_length(self) -> bool:
        names = {name.lower() for name, _ in self._headers}
        return b"content-length" in names or b"transfer-encoding" in names

    def _reset_answer(self) -> None:
        self._status = 0
        self._headers = []
        self._body = []
        self._body_bytes = 0
        self._headers_done = False
        self._complete = False

    def _finish(self, keep_alive: bool) -> None:
        self._complete = True
        self._keep_alive = keep_alive
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _read_timed_out(self) -> None:
        self._fail(httpx.ReadTimeout("timed out waiting for the answer"))

    def _fail(self, error: Exception) -> None:
        self.close()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(error)


class _Pool:
    """Connections to one origin: reuse idle ones, open up to ``limit``."""

    def __init__(self, limit: int) -> None:
        self.idle: deque[_Connection] = deque()
        self.slots = asyncio.Semaphore(limit)


Origin = tuple[bytes, bytes, int]
"""(scheme, host, port) of a URL: connections are pooled per origin."""


class Timeouts(NamedTuple):
    """httpx's four timeouts (seconds, None = none): see the module's docstring."""

    pool: float | None = DEFAULT_TIMEOUT
    connect: float | None = DEFAULT_TIMEOUT
    write: float | None = DEFAULT_TIMEOUT
    read: float | None = DEFAULT_TIMEOUT


class Answer(NamedTuple):
    status: int
    headers: list[tuple[bytes, bytes]]  # as received: names in the server's case
    content: bytes

    def header(self, name: bytes) -> bytes | None:
        """The first value of a header, by its lower-case name."""
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None


def origin_of(url: httpx.URL) -> Origin:
    scheme = url.raw_scheme
    if scheme not in (b"http", b"https"):
        raise httpx.UnsupportedProtocol(f"unsupported URL scheme {url.scheme!r}")
    return scheme, url.raw_host, url.port or (443 if scheme == b"https" else 80)


_TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 field name
_LINE_BREAK = re.compile(rb"[\r\n\0]")


def header_lines(headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    """Header lines for a request head. A name that is not a token, or a value holding CR,
    LF or NUL, is refused: it would start a header, or a request, of its own."""
    lines = []
    for name, value in headers:
        if not _TOKEN.fullmatch(name) or _LINE_BREAK.search(value):
            raise httpx.LocalProtocolError(f"header {name!r} cannot be written as it is")
        lines.append(b"%s: %s\r\n" % (name, value))
    return b"".join(lines)


class LeanTransport(httpx.AsyncBaseTransport):
    def __init__(
        self,
        max_connections: int = 64,
        ssl_context: ssl.SSLContext | None = None,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
    ):
        self.max_connections = max_connections
        self.max_answer_bytes = max_answer_bytes
        self._ssl_context = ssl_context
        self._pools: dict[Origin, _Pool] = {}
        self._closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """httpx's transport API (requests and responses as httpx objects)."""
        origin = origin_of(request.url)
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        try:
            body = request.content
        except httpx.RequestNotRead:  # a streamed body: this transport sends it whole
            body = await request.aread()
        answer = await self.exchange(
            origin,
            _request_head(request, len(body)),
            body,
            Timeouts(
                timeouts.get("pool", DEFAULT_TIMEOUT),
                timeouts.get("connect"),
                timeouts.get("write"),
                timeouts.get("read", DEFAULT_TIMEOUT),
            ),
        )
        return httpx.Response(
            answer.status,
            headers=answer.headers,
            content=answer.content,
            request=request,
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def exchange(
        self, origin: Origin, head: bytes, body: bytes, timeouts: Timeouts
    ) -> Answer:
        """Send one request whose head (request line and headers, ending in a blank
        line) the caller wrote, and read its answer. The sink calls this directly: it sends
        the same head but for a few lines thousands of times a second, and building
        httpx's request and response objects cost more CPU than the exchange itself.
        Failures are httpx's exception types."""
        if self._closed:
            raise RuntimeError("the transport is closed")
        pool = self._pools.get(origin)
        if pool is None:
            pool = self._pools[origin] = _Pool(self.max_connections)
        if pool.slots.locked():  # only a wait needs a deadline (it costs a timer)
            try:
                async with asyncio.timeout(timeouts.pool):
                    await pool.slots.acquire()
            except TimeoutError:
                raise httpx.PoolTimeout("no connection free in time") from None
        else:
            await pool.slots.acquire()
        try:
            connection = await self._connection(pool, origin, timeouts.connect)
            try:
                status, headers, content, reusable = await connection.exchange(
                    head, body, timeouts.write, timeouts.read
                )
            except BaseException:
                connection.close()  # cancelled or failed mid-exchange: its state is unknown
                raise
            if reusable and not connection.closed:
                pool.idle.append(connection)
            else:
                connection.close()
        finally:
            pool.slots.release()
        return Answer(status, headers, content)

    async def _connection(
        self, pool: _Pool, origin: Origin, connect_timeout: float | None
    ) -> _Connection:
        while pool.idle:
            connection = pool.idle.pop()  # the most recent: least likely closed by the peer
            if not connection.closed:
                return connection
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        tls: ssl.SSLContext | None = None
        if scheme == b"https":
            tls = self._ssl_context or ssl.create_default_context()
        try:
            async with asyncio.timeout(connect_timeout):
                _transport, connection = await loop.create_connection(
                    lambda: _Connection(self.max_answer_bytes), host.decode("ascii"), port, ssl=tls
                )
        except TimeoutError:
            raise httpx.ConnectTimeout(f"timed out connecting to {host.decode()}:{port}") from None
        except OSError as error:
            raise httpx.ConnectError(f"cannot connect to {host.decode()}:{port}: {error}") from None
        return connection

    async def aclose(self) -> None:
        self._closed = True
        for pool in self._pools.values():
            while pool.idle:
                pool.idle.pop().close()
        self._pools.clear()


FRAMING_HEADERS = frozenset({b"content-length", b"transfer-encoding", b"connection"})
"""Headers this transport writes itself: it decides framing and connection reuse."""


def request_line(method: str, url: httpx.URL, headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    """The request line and the given headers (less framing ones), with a host header
    when none is given: the start of a head, to which content-length and the blank line
    are added per request."""
    kept = [(n, v) for n, v in headers if n.lower() not in FRAMING_HEADERS]
    if not any(name.lower() == b"host" for name, _ in kept):
        kept.insert(0, (b"host", url.netloc))
    return b"%s %s HTTP/1.1\r\n%s" % (method.encode("ascii"), url.raw_path, header_lines(kept))


def _request_head(request: httpx.Request, length: int) -> bytes:
    start = request_line(request.method, request.url, request.headers.raw)
    return b"%scontent-length: %d\r\n\r\n" % (start, length)


def timeout_extension(seconds: float) -> dict[str, Any]:
    """The ``extensions`` entry httpx.AsyncClient would set for one overall timeout."""
    return {"timeout": {"connect": seconds, "read": seconds, "write": seconds, "pool": seconds}}
