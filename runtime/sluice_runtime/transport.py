"""A lean HTTP/1.1 transport for httpx: keep-alive connections on asyncio protocols, with
httptools (llhttp, the parser Node.js uses) reading the responses.

The sink posts one body per batch and reads a short answer, hundreds or thousands of times
a second from one event loop. httpx's own transport and httpx-aiohttp cost 150-300 µs of
CPU per request there (``make bench``'s http-client row); this one costs a fraction of
that, which matters because the runtime's CPU is shared by every record. It is an httpx
transport (``httpx.Request`` in, ``httpx.Response`` out) and raises httpx's exception
types; the sink itself uses ``post``, which takes the request head written once per
format and returns an ``Answer``, without the two httpx objects per request.

Scope, on purpose: HTTP/1.1 over TCP or TLS, no proxies, no pipelining, no 100-continue;
the response body is read whole, up to ``MAX_ANSWER_BYTES``: function answers are small
(``batchItemFailures`` at most), and a function that answers with gigabytes must not take
the runtime's memory with it. Timeouts follow httpx's
``request.extensions["timeout"]``: ``pool`` to get a connection, ``connect`` to open one,
``write`` while the kernel's send buffer is full, and ``read`` for the whole answer.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from typing import Any

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
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

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
        try:
            async with asyncio.timeout(read_timeout):
                await self._waiter
        except TimeoutError:
            self.close()
            raise httpx.ReadTimeout("timed out waiting for the answer") from None
        finally:
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

    def _fail(self, error: Exception) -> None:
        self.close()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(error)


class Answer:
    """A server's answer, as read: status, raw headers and the whole body."""

    __slots__ = ("content", "headers", "status")

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], content: bytes) -> None:
        self.status = status
        self.headers = headers
        self.content = content

    def header(self, name: bytes) -> str | None:
        """The first header of this (lower-case) name."""
        for key, value in self.headers:
            if key.lower() == name:
                return value.decode("latin-1")
        return None


class _Pool:
    """Connections to one origin: reuse idle ones, open up to ``limit``."""

    def __init__(self, limit: int) -> None:
        self.idle: deque[_Connection] = deque()
        self.slots = asyncio.Semaphore(limit)


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
        self._pools: dict[tuple[bytes, bytes, int], _Pool] = {}
        self._closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            body = request.content
        except httpx.RequestNotRead:  # a streamed body: this transport sends it whole
            body = await request.aread()
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        answer = await self.post(request.url, _request_head(request, len(body)), body, timeouts)
        return httpx.Response(
            answer.status,
            headers=answer.headers,
            content=answer.content,
            request=request,
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def post(
        self, url: httpx.URL, head: bytes, body: bytes, timeouts: dict[str, float | None]
    ) -> Answer:
        """Send a request whose head is written already (``head_prefix`` and its length);
        the sink's way in, with no ``httpx.Request`` or ``httpx.Response`` per request
        (building them was a fifth of the cost of a request)."""
        if self._closed:
            raise RuntimeError("the transport is closed")
        scheme = url.raw_scheme
        if scheme not in (b"http", b"https"):
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {url.scheme!r}")
        port = url.port or (443 if scheme == b"https" else 80)
        origin = (scheme, url.raw_host, port)
        pool = self._pools.get(origin)
        if pool is None:
            pool = self._pools[origin] = _Pool(self.max_connections)
        if pool.slots.locked():  # only a wait needs a deadline (it costs a timer)
            try:
                async with asyncio.timeout(timeouts.get("pool", DEFAULT_TIMEOUT)):
                    await pool.slots.acquire()
            except TimeoutError:
                raise httpx.PoolTimeout("no connection free in time") from None
        else:
            await pool.slots.acquire()
        try:
            connection = await self._connection(pool, origin, timeouts.get("connect"))
            try:
                status, headers, content, reusable = await connection.exchange(
                    head, body, timeouts.get("write"), timeouts.get("read", DEFAULT_TIMEOUT)
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
        self, pool: _Pool, origin: tuple[bytes, bytes, int], connect_timeout: float | None
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


def head_prefix(request: httpx.Request) -> bytes:
    """A request's line and headers as this transport writes them, up to the length, which
    ``with_length`` adds (the sink writes the rest of its requests' heads once)."""
    url = request.url
    lines = [b"%s %s HTTP/1.1" % (request.method.encode("ascii"), url.raw_path)]
    has_host = False
    for name, value in request.headers.raw:
        lowered = name.lower()
        if lowered in (b"content-length", b"transfer-encoding", b"connection"):
            continue  # this transport decides framing and connection reuse
        has_host = has_host or lowered == b"host"
        lines.append(b"%s: %s" % (name, value))
    if not has_host:
        lines.append(b"host: %s" % url.netloc)
    return b"\r\n".join(lines) + b"\r\n"


def with_length(prefix: bytes, length: int) -> bytes:
    return prefix + b"content-length: %d\r\n\r\n" % length


def _request_head(request: httpx.Request, length: int) -> bytes:
    return with_length(head_prefix(request), length)


def timeout_extension(seconds: float) -> dict[str, Any]:
    """The ``extensions`` entry httpx.AsyncClient would set for one overall timeout."""
    return {"timeout": {"connect": seconds, "read": seconds, "write": seconds, "pool": seconds}}
