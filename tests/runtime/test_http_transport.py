"""The sink's HTTP transport against real sockets: servers that answer the way functions and
the things in front of them do (keep-alive, chunked, close-delimited, interim answers,
closed idle connections, garbage, silence) and TLS."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from sluice_runtime.transport import LeanTransport, timeout_extension

Answer = Callable[[bytes, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[bool]]
"""Writes the answer to one request (head, body already read); False closes the connection."""


class Server:
    """A raw HTTP/1.1 server whose answers the test scripts byte by byte."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.connections = 0
        self.requests: list[tuple[bytes, bytes]] = []
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> Server:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/fn?x=1"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                body = await reader.readexactly(length)
                self.requests.append((head, body))
                if not await self.answer(head, reader, writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def ok(body: bytes = b"ok") -> Answer:
    async def answer(_head: bytes, _r: asyncio.StreamReader, w: asyncio.StreamWriter) -> bool:
        w.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
        await w.drain()
        return True

    return answer


async def post(
    transport: LeanTransport,
    url: str,
    body: bytes = b"[1]",
    seconds: float = 5.0,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    request = httpx.Request(
        "POST",
        url,
        content=body,
        headers={"content-type": "application/json", **(headers or {})},
        extensions=timeout_extension(seconds),
    )
    return await transport.handle_async_request(request)


async def test_requests_reuse_one_connection_and_arrive_intact() -> None:
    async with Server(ok(b'{"fine": true}')) as server:
        authority = server.url.split("/")[2]
        transport = LeanTransport()
        bodies = [b"[%d]" % i for i in range(50)]
        for body in bodies:
            response = await post(transport, server.url, body, headers={"x-team": "ads"})
            assert response.status_code == 200
            assert response.json() == {"fine": True}
        await transport.aclose()
    assert server.connections == 1
    assert [body for _head, body in server.requests] == bodies
    head = server.requests[0][0].decode()
    assert head.startswith("POST /fn?x=1 HTTP/1.1\r\n")
    lowered = head.lower()
    assert "x-team: ads" in lowered
    assert "content-type: application/json" in lowered
    assert lowered.count("content-length:") == 1
    assert f"host: {authority}" in lowered


async def test_a_large_body_is_sent_whole() -> None:
    async with Server(ok()) as server:
        transport = LeanTransport()
        body = bytes(range(256)) * (20 * 1024)  # 5 MB, past any socket buffer
        response = await post(transport, server.url, body)
        await transport.aclose()
    assert response.status_code == 200
    assert server.requests[0][1] == body


async def test_concurrent_requests_respect_the_connection_limit() -> None:
    in_flight = 0
    most = 0

    async def slow(_head: bytes, _r: asyncio.StreamReader, w: asyncio.StreamWriter) -> bool:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.02)
        in_flight -= 1
        w.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        await w.drain()
        return True

    async with Server(slow) as server:
        transport = LeanTransport(max_connections=4)
        responses = await asyncio.gather(*(post(transport, server.url) for _ in range(20)))
        await transport.aclose()
    assert [r.status_code for r in responses] == [204] * 20
    assert most == 4
    assert server.connections == 4


async def test_chunked_and_close_delimited_bodies_are_read() -> None:
    async def chunked(_head: bytes, _r: asyncio.StreamReader, w: asyncio.StreamWriter) -> bool:
        w.write(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-type: application/json"
            b'\r\n\r\n5\r\n{"a":\r\n3\r\n 1}\r\n0\r\n\r\n'
        )
        await w.drain()
        return True

    async def until_close(_head: bytes, _r: asyncio.StreamReader, w: asyncio.StreamWriter) -> bool:
        w.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n")
        w.write(b'{"b": 2}')
        await w.drain()
        return False

    async with Server(chunked) as first, Server(until_close) as second:
        transport = LeanTransport()
        assert (await post(transport, first.url)).json() == {"a": 1}
        assert (await post(transport, first.url)).json() == {"a": 1}
        assert (await post(transport, second.url)).json() == {"b": 2}
        assert (await post(transport, second.url)).json() == {"b": 2}
        await transport.aclose()
    assert first.connections == 1
    assert second.connections == 2  # the server closed the first one


async def test_an_interim_answer_is_skipped() -> None:
    async def interim(_head: bytes, _r: asyncio.StreamReader, w: asyncio.StreamWriter) -> bool:
        w.write(b"HTTP/1.1 103 Early Hints\r\nlink: </x>\r\n\r\n")
        w.write(b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\nok")
        await w.drain()
        return True

    async with Server(interim) as server:
        transport = LeanTransport()
        response = await post(transport, server.url)
        await transport.aclose()
    assert response.status_code == 202
    assert response.text == "ok"


async def test_an_idle_connection_the_server_closed_is_not_reused() -> None:
    async def answer_once(_head: bytes, _r: asyncio.StreamReader, w: asyncio.StreamWriter) -> bool:
        w.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
        await w.drain()
        return False  # close after answering, without saying so (idle timeout)

    async with Server(answer_once) as server:
        transport = LeanTransport()
        assert (await post(transport, server.url)).status_code == 200
        await asyncio.sleep(0.1)  # the close reaches the client
        assert (await post(transport, server.url)).status_code == 200
        await transport.aclose()
    assert server.connections == 2


async def test_failures_are_httpx_errors() -> None:
    async def garbage(_head: bytes, _r: asyncio.StreamReader, w: asyncio.StreamWriter) -> bool:
        w.write(b"this is not http\r\n\r\n")
        await w.drain()
        return True

    async def hang_up(_head: bytes, _r: asyncio.StreamReader, w: asyncio.StreamWriter) -> bool:
        w.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial")
        await w.drain()
        return False

    async def silent(_head: bytes, _r: asyncio.StreamReader, _w: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(5)
        return False

    transport = LeanTransport()
    async with Server(garbage) as server:
        with pytest.raises(httpx.RemoteProtocolError, match="invalid HTTP response"):
            await post(transport, server.url)
    async with Server(hang_up) as server:
        with pytest.raises(httpx.RemoteProtocolError, match="closed the connection"):
            await post(transport, server.url)
    async with Server(silent) as server:
        with pytest.raises(httpx.ReadTimeout):
            await post(transport, server.url, seconds=0.2)
    unused = await asyncio.start_server(lambda _r, _w: None, "127.0.0.1", 0)
    port = unused.sockets[0].getsockname()[1]
    unused.close()
    await unused.wait_closed()
    with pytest.raises(httpx.ConnectError, match=f"127.0.0.1:{port}"):
        await post(transport, f"http://127.0.0.1:{port}/")
    with pytest.raises(httpx.UnsupportedProtocol):
        await post(transport, "ftp://127.0.0.1/")
    await transport.aclose()


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost: (certificate, key)."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


async def test_https(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    received: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.lower().split(b"\r\n")
        length = next(int(line.split(b":")[1]) for line in lines if b"content-length" in line)
        received.append(await reader.readexactly(length))
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server_tls)
    port = server.sockets[0].getsockname()[1]
    client_tls = ssl.create_default_context(cafile=str(cert))
    transport = LeanTransport(ssl_context=client_tls)
    try:
        response = await post(transport, f"https://localhost:{port}/", b"[42]")
        assert response.text == "ok"
        assert received == [b"[42]"]
        untrusted = LeanTransport()  # the system's roots do not know this certificate
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await post(untrusted, f"https://localhost:{port}/")
        await untrusted.aclose()
    finally:
        await transport.aclose()
        server.close()
