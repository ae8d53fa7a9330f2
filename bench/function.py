"""The benchmark's function: a FunctionServer (keep=False: it counts, keeps nothing) in its
own process, driven over stdin/stdout so the runtime and the bench measure from outside.

    python -m bench.function [--delay SECONDS]

Prints ``listening <url>``, then answers one JSON line per command read from stdin:
``stats`` (requests, events, first and last receipt times), ``latency`` (percentiles of
event time → receipt, in ms), ``reset`` (forget everything so far) and ``quit``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

import orjson

from testkit.function_server import FunctionServer, Received


class Counting:
    """First and last receipt of the counted requests (the server counts them)."""

    def __init__(self, server: FunctionServer) -> None:
        self.server = server
        self.first_at: float | None = None
        self.last_at: float | None = None
        self.reset_at = time.time()

    def on_request(self, received: Received) -> None:
        if self.first_at is None:
            self.first_at = received.at
        self.last_at = received.at

    def reset(self) -> None:
        server = self.server
        with server._lock:
            server.request_count = 0
            server.event_count = 0
            server.latencies.clear()
        self.first_at = self.last_at = None
        self.reset_at = time.time()

    def stats(self) -> dict[str, Any]:
        return {
            "requests": self.server.request_count,
            "events": self.server.event_count,
            "first_at": self.first_at,
            "last_at": self.last_at,
            "now": time.time(),
        }

    def latency(self) -> dict[str, Any]:
        with self.server._lock:
            samples = sorted(self.server.latencies)
        return {"count": len(samples), **percentiles_ms(samples)}


def percentiles_ms(sorted_seconds: list[float]) -> dict[str, float | None]:
    """Nearest-rank p50/p95/p99/max in milliseconds of sorted durations in seconds."""

    def rank(q: float) -> float | None:
        if not sorted_seconds:
            return None
        index = min(len(sorted_seconds) - 1, max(0, int(q * len(sorted_seconds) + 0.5) - 1))
        return sorted_seconds[index] * 1000

    return {"p50": rank(0.50), "p95": rank(0.95), "p99": rank(0.99), "max": rank(1.0)}


async def serve(delay: float) -> None:
    server = FunctionServer(delay=delay, keep=False)
    counting = Counting(server)
    server.on_request = counting.on_request
    await server.start()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print(f"listening {server.url}", flush=True)
    try:
        while line := await reader.readline():
            command = line.decode().strip()
            answer: dict[str, Any]
            if command == "stats":
                answer = counting.stats()
            elif command == "latency":
                answer = counting.latency()
            elif command == "reset":
                counting.reset()
                answer = {"ok": True}
            elif command == "quit":
                break
            else:
                answer = {"error": f"unknown command {command!r}"}
            sys.stdout.write(orjson.dumps(answer).decode() + "\n")
            sys.stdout.flush()
    finally:
        await server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description="the benchmark's counting function")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds per request")
    args = parser.parse_args()
    asyncio.run(serve(args.delay))


if __name__ == "__main__":
    main()
