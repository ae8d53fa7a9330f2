"""A recording proxy in front of the real API server: plain HTTP on loopback, forwarding
every request as it came (with the caller's own credentials, so the API server authorizes
the caller) and streaming every answer back (watches included), while noting what was
asked. Tests run the operator through it under the chart's ServiceAccount to see which
verbs it really uses.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from dataclasses import dataclass
from urllib.parse import parse_qs

import aiohttp
from aiohttp import web

# Hop-by-hop headers, and those aiohttp sets itself for the body it sends.
_NOT_FORWARDED = {
    "host",
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "content-encoding",
    "upgrade",
}


@dataclass(frozen=True)
class ApiCall:
    method: str
    path: str
    query: str
    status: int

    def access(self) -> set[tuple[str, str, str]]:
        """The (API group, resource[/subresource], verb) the API server authorized, as
        RBAC names them; empty for discovery and other non-resource paths."""
        parts = [p for p in self.path.split("/") if p]
        if parts[:1] == ["api"] and len(parts) > 2:
            group, rest = "", parts[2:]
        elif parts[:1] == ["apis"] and len(parts) > 3:
            group, rest = parts[1], parts[3:]
        else:
            return set()
        if rest[0] == "namespaces" and len(rest) > 2:
            rest = rest[2:]  # a namespaced resource
        resource = rest[0] + (f"/{rest[2]}" if len(rest) > 2 else "")
        named = len(rest) > 1
        watching = parse_qs(self.query).get("watch", ["false"])[0] in ("true", "1")
        verbs = {
            "GET": "watch" if watching else "get" if named else "list",
            "POST": "create",
            "PUT": "update",
            "PATCH": "patch",
            "DELETE": "delete" if named else "deletecollection",
        }
        found = {(group, resource, verbs[self.method])}
        if self.method == "PATCH" and self.status == 201:
            found.add((group, resource, "create"))  # server-side apply created it
        return found


class RecordingApiProxy:
    def __init__(self, upstream: str, ca_file: str | None) -> None:
        self.upstream = upstream.rstrip("/")
        self._ssl = ssl.create_default_context(cafile=ca_file) if ca_file else None
        self._calls: list[ApiCall] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.url = ""

    def calls(self) -> list[ApiCall]:
        with self._lock:
            return list(self._calls)

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _NOT_FORWARDED}
        body = await request.read()
        async with self._session.request(
            request.method,
            self.upstream + request.path_qs,
            headers=headers,
            data=body or None,
            ssl=self._ssl if self._ssl is not None else True,
            allow_redirects=False,
        ) as answer:
            with self._lock:
                self._calls.append(
                    ApiCall(request.method, request.path, request.query_string, answer.status)
                )
            response = web.StreamResponse(
                status=answer.status,
                headers={
                    k: v for k, v in answer.headers.items() if k.lower() not in _NOT_FORWARDED
                },
            )
            await response.prepare(request)
            try:
                async for chunk in answer.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
            except (ConnectionResetError, aiohttp.ClientError):
                pass  # the caller, or upstream at shutdown, went away mid-watch
            return response

    async def _start(self) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_read=None), auto_decompress=False
        )
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        # A handler still streaming at shutdown (a watch whose caller has gone quiet) is
        # cancelled after a few seconds instead of the default minute, which is longer
        # than __exit__ waits.
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=3.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    async def _stop(self) -> None:
        # Upstream first: a watch the caller left open ends when its upstream read does,
        # and the server's cleanup waits for every handler to end.
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def __enter__(self) -> RecordingApiProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *_: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
