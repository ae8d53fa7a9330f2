"""A listener that plays a Kafka broker just far enough for a client to authenticate with
SASL/PLAIN, and records every byte it receives: what a server run by someone who wants a
client's credentials would see. Tests point Connectors at it to check whose credentials the
operator sends where.

It answers ApiVersions, SaslHandshake (offering PLAIN) and SaslAuthenticate (refusing, so
the client never goes further); any other request is recorded and left unanswered.
"""

from __future__ import annotations

import socket
import socketserver
import struct
import threading

API_VERSIONS = 18
SASL_HANDSHAKE = 17
SASL_AUTHENTICATE = 36
SASL_AUTHENTICATION_FAILED = 58
# (api key, lowest, highest version) this listener answers.
SUPPORTED = [(API_VERSIONS, 0, 3), (SASL_HANDSHAKE, 0, 1), (SASL_AUTHENTICATE, 0, 1)]


def _uvarint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _api_versions_body(version: int) -> bytes:
    if version >= 3:  # flexible: compact array and tagged fields
        entries = b"".join(struct.pack(">hhh", *api) + _uvarint(0) for api in SUPPORTED)
        return struct.pack(">h", 0) + _uvarint(len(SUPPORTED) + 1) + entries + b"\0\0\0\0\0"
    entries = b"".join(struct.pack(">hhh", *api) for api in SUPPORTED)
    body = struct.pack(">hi", 0, len(SUPPORTED)) + entries
    return body + (struct.pack(">i", 0) if version >= 1 else b"")


def _answer(api_key: int, version: int) -> bytes | None:
    if api_key == API_VERSIONS:
        return _api_versions_body(version)
    if api_key == SASL_HANDSHAKE:
        return struct.pack(">hih", 0, 1, 5) + b"PLAIN"
    if api_key == SASL_AUTHENTICATE:
        message = b"Authentication failed"
        body = struct.pack(">hh", SASL_AUTHENTICATION_FAILED, len(message)) + message
        body += struct.pack(">i", 0)  # no auth bytes
        return body + (struct.pack(">q", 0) if version >= 1 else b"")
    return None


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        connection: socket.socket = self.request
        buffer = b""
        while True:
            try:
                chunk = connection.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            self.server.record(chunk)
            buffer += chunk
            while len(buffer) >= 4:
                (size,) = struct.unpack(">i", buffer[:4])
                if len(buffer) < 4 + size:
                    break
                frame, buffer = buffer[4 : 4 + size], buffer[4 + size :]
                api_key, version, correlation = struct.unpack(">hhi", frame[:8])
                body = _answer(api_key, version)
                if body is None:
                    continue
                # Response header v0 (the correlation id) for all three: ApiVersions always
                # uses it, and the SASL requests answered here are not flexible versions.
                response = struct.pack(">i", correlation) + body
                try:
                    connection.sendall(struct.pack(">i", len(response)) + response)
                except OSError:
                    return


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self._received = bytearray()
        self._lock = threading.Lock()

    def record(self, chunk: bytes) -> None:
        with self._lock:
            self._received += chunk

    def received(self) -> bytes:
        with self._lock:
            return bytes(self._received)


class RecordingBroker:
    """``address`` is host:port on loopback; ``received()`` is every byte sent to it."""

    def __init__(self) -> None:
        self._server = _Server()
        self.address = f"127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def received(self) -> bytes:
        return self._server.received()

    def __enter__(self) -> RecordingBroker:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()
