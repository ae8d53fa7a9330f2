"""HTTP client comparison for the sink: plain httpx, httpx on the aiohttp transport
(httpx-aiohttp), raw aiohttp and what the sink ships (``sluice``: a request head written
once, posted with ``sluice_runtime.transport.LeanTransport.post``), posting a real ~50 KB
cloudevents-batch body to the benchmark's function server (another process)
at several concurrencies.

Each client runs in its own process so its CPU time is its own:

    python -m bench.http_clients --url URL --client httpx --concurrency 1,8,64 --seconds 3

prints one JSON line: {concurrency: {requests_per_s, cpu_us_per_request, errors}}.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from bench.procs import Child
from bench.report import Row
from sluice_runtime.app import new_event_loop

CLIENTS = ("httpx", "httpx-aiohttp", "aiohttp", "sluice")
CONCURRENCY = (1, 8, 64)
CONTENT_TYPE = "application/cloudevents-batch+json"
BODY_RECORDS = 80  # ≈ 50 KB of cloudevents-batch


def request_body(records: int = BODY_RECORDS) -> bytes:
    """The body the sink would send for ``records`` ~200-byte records."""
    from bench.kafka import KEYS, wide_value
    from sluice_runtime.envelope import build_envelope
    from sluice_runtime.payload import build_request
    from sluice_runtime.records import Event, Record

    now = int(time.time() * 1000)
    items = []
    for offset in range(records):
        record = Record(
            "ad-views", 3, 1000 + offset, now, KEYS[offset % len(KEYS)], wide_value(offset, now)
        )
        items.append(Event(record, build_envelope(record)))
    return build_request(items, "cloudevents-batch", "/namespaces/bench/connectors/bench").body


Post = Callable[[], Awaitable[int]]


async def _client(
    kind: str, url: str, body: bytes, concurrency: int
) -> tuple[Post, Callable[[], Awaitable[None]]]:
    headers = {"content-type": CONTENT_TYPE}
    if kind in ("httpx", "httpx-aiohttp"):
        import httpx

        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        if kind == "httpx":
            client = httpx.AsyncClient(limits=limits, timeout=30.0)
        else:
            from httpx_aiohttp import AiohttpTransport

            client = httpx.AsyncClient(transport=AiohttpTransport(limits=limits), timeout=30.0)

        async def post_httpx() -> int:
            response = await client.post(url, content=body, headers=headers)
            return response.status_code

        return post_httpx, client.aclose
    if kind == "sluice":
        import httpx

        from sluice_runtime.transport import LeanTransport, Timeouts, origin_of, request_line

        # As the sink does: the head written once, posted without httpx objects.
        transport = LeanTransport(max_connections=concurrency)
        target = httpx.URL(url)
        origin, timeouts = origin_of(target), Timeouts()
        start = request_line(
            "POST", target, [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        )

        async def post_sluice() -> int:
            head = b"%scontent-length: %d\r\n\r\n" % (start, len(body))
            answer = await transport.exchange(origin, head, body, timeouts)
            return answer.status

        return post_sluice, transport.aclose
    if kind == "aiohttp":
        import aiohttp

        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=concurrency),
            timeout=aiohttp.ClientTimeout(total=30.0),
        )

        async def post_aiohttp() -> int:
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                return response.status

        return post_aiohttp, session.close
    raise ValueError(f"unknown client {kind!r}")


async def measure(
    kind: str, url: str, body: bytes, concurrency: int, seconds: float
) -> dict[str, float]:
    post, close = await _client(kind, url, body, concurrency)
    try:
        # Warm-up: open every connection of the pool.
        await asyncio.gather(*(post() for _ in range(concurrency * 2)))
        done = errors = 0
        started = time.perf_counter()
        cpu_started = time.process_time()
        deadline = started + seconds

        async def worker() -> None:
            nonlocal done, errors
            while time.perf_counter() < deadline:
                status = await post()
                done += 1
                if status != 200:
                    errors += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
    finally:
        await close()
    return {
        "requests_per_s": done / elapsed,
        "cpu_us_per_request": cpu / max(done, 1) * 1e6,
        "errors": float(errors),
    }


def http_client_row(
    repeat: int, quick: bool, work_log: Callable[[str], Child], log: Callable[[str], None]
) -> Row:
    seconds = 0.5 if quick else 3.0
    body = request_body()
    row = Row(
        "http-client",
        f"requests/s posting a {len(body) / 1024:.0f} KiB cloudevents-batch body to the local "
        f"function at concurrency {', '.join(map(str, CONCURRENCY))} ({seconds:g}s each, "
        "every client on uvloop, the runtime's loop); "
        "headline = sluice (the shipped sink client) ÷ httpx at concurrency 64",
        "shipped_speedup_c64",
        "x",
        None,
    )
    row.details.update(body_bytes=len(body), seconds=seconds, clients=list(CLIENTS))
    function = work_log("http-client")
    try:
        url = function.expect("listening ", 30).split()[1]
        for index in range(repeat):
            run: dict[str, float] = {}
            for kind in CLIENTS:
                server_cpu = function.cpu_seconds() or 0.0
                began = time.perf_counter()
                client = Child(
                    f"client-{kind}",
                    "bench.http_clients",
                    [
                        "--url",
                        url,
                        "--client",
                        kind,
                        "--concurrency",
                        ",".join(map(str, CONCURRENCY)),
                        "--seconds",
                        str(seconds),
                    ],
                    function.log.with_name(f"http-client-{kind}.log"),
                )
                with client:
                    result = client.expect("{", 60 + seconds * len(CONCURRENCY) * 2)
                server_share = ((function.cpu_seconds() or 0.0) - server_cpu) / (
                    time.perf_counter() - began
                )
                for concurrency, figures in orjson.loads(result).items():
                    for key, value in figures.items():
                        run[f"{kind}@{concurrency}.{key}"] = value
                run[f"{kind}.server_cpu_cores"] = server_share
            if run.get("httpx@64.requests_per_s"):
                run["shipped_speedup_c64"] = (
                    run["sluice@64.requests_per_s"] / run["httpx@64.requests_per_s"]
                )
            row.runs.append(run)
            log(
                f"  run {index + 1}/{repeat}: "
                + "; ".join(
                    f"{kind} "
                    + " / ".join(f"{run[f'{kind}@{c}.requests_per_s']:,.0f}" for c in CONCURRENCY)
                    for kind in CLIENTS
                )
                + f" requests/s at concurrency {'/'.join(map(str, CONCURRENCY))}"
            )
    finally:
        function.stop(timeout=5)
    return row


def http_client_section(rows: list[Row]) -> str:
    """A Markdown table of every client and concurrency (medians)."""
    row = next((r for r in rows if r.name == "http-client" and r.runs), None)
    if row is None:
        return ""
    medians = row.medians
    header = ["client", *(f"c={c} req/s" for c in CONCURRENCY)]
    header += [f"c={c} µs CPU/req" for c in CONCURRENCY]
    lines = [
        "## HTTP clients (medians)",
        "",
        f"Body {row.details.get('body_bytes', 0):,} bytes, {row.details.get('seconds')} s per "
        "measurement, one client process per client, the function in another process.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for kind in CLIENTS:
        cells = [kind]
        cells += [f"{medians.get(f'{kind}@{c}.requests_per_s', 0):,.0f}" for c in CONCURRENCY]
        cells += [f"{medians.get(f'{kind}@{c}.cpu_us_per_request', 0):,.0f}" for c in CONCURRENCY]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description="measure one HTTP client")
    parser.add_argument("--url", required=True)
    parser.add_argument("--client", choices=CLIENTS, required=True)
    parser.add_argument("--concurrency", default=",".join(map(str, CONCURRENCY)))
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    body = request_body()
    results: dict[str, Any] = {}
    for concurrency in (int(c) for c in args.concurrency.split(",")):
        # Every client on the loop the runtime runs on (uvloop), so that the row compares
        # clients, not event loops.
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            results[str(concurrency)] = runner.run(
                measure(args.client, args.url, body, concurrency, args.seconds)
            )
    sys.stdout.write(orjson.dumps(results).decode() + "\n")


if __name__ == "__main__":
    main()
