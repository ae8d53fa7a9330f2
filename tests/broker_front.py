"""A listener before the real broker, for tests of the operator's own Kafka reader
(``kafka_wire``): what a broker behind TLS, or a coordinator that moves, looks like."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable

from sluice_operator import kafka_wire

Intercept = Callable[[int, int, int], bytes | None]
"""(api key, version, correlation id) of a request → the body of an answer to give in the
broker's place (after the response header), or None to forward the request."""


class BrokerFront:
    """Forwards each request and its answer as they are, except FindCoordinator's answer:
    its coordinator (the broker's plaintext listener) becomes this listener, so the whole
    read goes through it, on a second connection. With ``tls``, a TLS listener (wanting a
    client certificate when the context says so). ``intercept`` may answer a request
    itself instead."""

    def __init__(
        self, broker: str, tls: ssl.SSLContext | None = None, intercept: Intercept | None = None
    ) -> None:
        self.broker = broker.rsplit(":", 1)
        self.tls = tls
        self.intercept = intercept
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.clients: list[str] = []  # the CN of each client certificate
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        client: socket.socket = raw
        if self.tls is not None:
            try:
                client = self.tls.wrap_socket(raw, server_side=True)
            except (ssl.SSLError, OSError):  # the client refused our certificate
                raw.close()
                return
            subject = (client.getpeercert() or {}).get("subject", ())
            assert isinstance(subject, tuple)
            for name in subject:
                self.clients += [str(pair[1]) for pair in name if pair[0] == "commonName"]
        with client, socket.create_connection((self.broker[0], int(self.broker[1]))) as broker:
            while request := self._frame(client):
                api_key = int.from_bytes(request[4:6], "big")
                version = int.from_bytes(request[6:8], "big")
                correlation = int.from_bytes(request[8:12], "big", signed=True)
                body = self.intercept and self.intercept(api_key, version, correlation)
                if body is not None:
                    header = kafka_wire.Writer().int32(correlation).no_tagged_fields().bytes()
                    client.sendall(len(header + body).to_bytes(4, "big") + header + body)
                    continue
                broker.sendall(request)
                answer = self._frame(broker)
                if api_key == kafka_wire.FIND_COORDINATOR:
                    answer = self._to_me(answer)
                client.sendall(answer)

    @staticmethod
    def _frame(peer: socket.socket) -> bytes:
        data = b""
        while len(data) < 4 or len(data) < 4 + int.from_bytes(data[:4], "big"):
            chunk = peer.recv(65536)
            if not chunk:
                return b""
            data += chunk
        return data

    def _to_me(self, frame: bytes) -> bytes:
        """FindCoordinator's answer (version 4+) with this listener as the coordinator."""
        body = kafka_wire.Reader(frame[4:])
        correlation = body.int32()
        body.skip_tagged_fields()
        out = kafka_wire.Writer().int32(correlation).no_tagged_fields()
        out.int32(body.int32())  # throttle
        count = body.compact_array_length()
        out.compact_array_length(count)
        for _ in range(count):
            out.compact_string(body.compact_string())
            out.int32(body.int32())
            body.compact_string(), body.int32()
            out.compact_string("127.0.0.1").int32(self.port)
            out.int16(body.int16()).compact_string(body.compact_string())
            body.skip_tagged_fields()
            out.no_tagged_fields()
        message = out.no_tagged_fields().bytes()
        return len(message).to_bytes(4, "big") + message

    def close(self) -> None:
        self.listener.close()
