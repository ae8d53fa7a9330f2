"""A small, fast HTTP function for tests, benchmarks and the demo: it records (or just
counts) what it receives and can be told to be slow or to fail.

It speaks just enough HTTP/1.1 (keep-alive, Content-Length bodies) on asyncio streams to
keep up with the runtime in benchmarks without adding a web framework dependency.

    python -m testkit.function_server --port 8080 [--delay 2] [--print]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import simdjson

Behaviour = Callable[[list[Any]], tuple[int, dict[str, str], bytes] | None]
"""Decides the answer for one request's events; None = 200 OK."""


@dataclass
class Received:
    at: float
    headers: dict[str, str]
    events: list[Any]


@dataclass
class FunctionServer:
    host: str = "127.0.0.1"
    port: int = 0
    delay: float = 0.0
    keep: bool = True  # keep every request (tests); False only counts (benchmarks)
    behaviour: Behaviour | None = None
    fail_ratio: float = 0.0
    on_request: Callable[[Received], None] | None = None
    requests: list[Received] = field(default_factory=list)
    request_count: int = 0
    event_count: int = 0
    latencies: list[float] = field(default_factory=list)  # event time → receipt, seconds
    _server: asyncio.Server | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)
    _parser: simdjson.Parser = field(default_factory=simdjson.Parser)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            await self._server.wait_closed()

    def events(self) -> list[Any]:
        with self._lock:
            return [event for request in self.requests for event in request.events]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                status, extra, answer = await self._handle(headers, body)
                reason = {200: "OK", 202: "Accepted"}.get(status, "Status")
                out = [
                    f"HTTP/1.1 {status} {reason}",
                    f"content-length: {len(answer)}",
                    "content-type: application/json",
                ]
                out += [f"{k}: {v}" for k, v in extra.items()]
                writer.write(("\r\n".join(out) + "\r\n\r\n").encode() + answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _handle(
        self, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        if not self.keep and self.behaviour is None and not self.fail_ratio:
            counted = self._count(headers, body)
            if counted is not None:
                if self.delay:
                    await asyncio.sleep(self.delay)
                return counted
        try:
            parsed = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            parsed = body.decode("utf-8", "replace")
        if headers.get("ce-id") is not None:
            attributes = {k[3:]: v for k, v in headers.items() if k.startswith("ce-")}
            events: list[Any] = [{"ce": attributes, "data": parsed}]
        else:
            events = parsed if isinstance(parsed, list) else [parsed]
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_ratio and random.random() < self.fail_ratio:
            return 500, {}, b'{"error": "injected failure"}'
        if self.behaviour is not None and (decided := self.behaviour(events)) is not None:
            return decided
        now = time.time()
        sampled = [_event_time(event) for event in events[:: max(1, len(events) // 4)]]
        latencies = [now - stamp for stamp in sampled if stamp is not None]
        return self._counted(Received(now, headers, events), len(events), latencies)

    def _counted(
        self, received: Received, events: int, latencies: list[float]
    ) -> tuple[int, dict[str, str], bytes]:
        """Count an accepted request (keeping it unless only counting) and answer 200."""
        with self._lock:
            self.request_count += 1
            self.event_count += events
            if self.keep:
                self.requests.append(received)
            else:
                self.latencies.extend(latencies)
        if self.on_request is not None:
            self.on_request(received)
        return 200, {}, b"{}"

    def _count(
        self, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes] | None:
        """Count a batch without building it in Python (benchmarks): simdjson validates the
        whole body and reads only the sampled timestamps, so the function stays cheap next
        to the runtime it measures. None: not a JSON array, handled the general way."""
        if headers.get("ce-id") is not None or not body.startswith(b"["):
            return None
        try:
            events = self._parser.parse(body)
        except ValueError:
            return None
        if not isinstance(events, simdjson.Array):
            return None
        now = time.time()
        count = len(events)
        latencies = []
        for index in range(0, count, max(1, count // 4)):
            stamp = _pointed_time(events, index)
            if stamp is not None:
                latencies.append(now - stamp)
        del events  # the parser is reused for the next request
        return self._counted(Received(now, headers, []), count, latencies)


def _pointed_time(events: simdjson.Array, index: int) -> float | None:
    """The record time of one CloudEvent of a simdjson array, read without building it."""
    try:
        stamp = events.at_pointer(f"/{index}/data/timestamp")
    except (KeyError, IndexError, ValueError, TypeError):
        return None
    return float(stamp) / 1000 if isinstance(stamp, int) else None


def _event_time(event: Any) -> float | None:
    if isinstance(event, dict):
        data = event.get("data", event)
        if isinstance(data, dict) and isinstance(data.get("timestamp"), int):
            return float(data["timestamp"]) / 1000
    return None


class ThreadedFunctionServer:
    """Runs a FunctionServer on its own event loop thread (for synchronous tests)."""

    def __init__(self, **kwargs: Any) -> None:
        self.server = FunctionServer(**kwargs)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> FunctionServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self._loop).result(10)
        return self.server

    def __exit__(self, *_: object) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds per request")
    parser.add_argument("--print", action="store_true", help="print each request's events")
    args = parser.parse_args()

    def show(received: Received) -> None:
        stamp = time.strftime("%H:%M:%S", time.localtime(received.at))
        print(f"[{stamp}] function invoked with {len(received.events)} event(s)", flush=True)
        for event in received.events:
            data = event.get("data", event) if isinstance(event, dict) else event
            print(f"    {orjson.dumps(data).decode()}", flush=True)

    async def serve() -> None:
        server = FunctionServer(
            args.host, args.port, args.delay, on_request=show if args.print else None
        )
        await server.start()
        print(f"function listening on {server.url}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
