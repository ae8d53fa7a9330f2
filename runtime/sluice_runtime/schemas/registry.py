"""The schema registry client: schemas fetched by id once, compiled once, kept by id.

Only the Confluent-compatible read API is used (``GET /schemas/ids/{id}`` and, for schema
references, ``GET /subjects/{subject}/versions/{version}``), which Confluent Schema Registry,
Apicurio Registry (``/apis/ccompat/v7``), Karapace and Redpanda all serve.

Fetching is blocking HTTP, so the runtime runs it in a thread (:meth:`Registry.fetch_async`)
and never on the event loop. A registry that cannot be reached, or answers with an error
other than "no such schema", is retried with a bounded backoff for as long as it takes: the
record waits (and so does its partition), it is never failed for an outage, and no offset is
committed past it. Only a schema the registry says does not exist fails the record
(SCHEMA_NOT_FOUND: a 404 with one of the registry API's "not found" error codes, so a
wrong URL path is an outage, not a missing schema); that answer is remembered for a short
while, then asked again, so a schema registered late is found. An answer that is not what
the API promises (malformed, too large, nested too deeply) is treated as an outage too:
it is logged and retried, and never stops the runtime.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import ssl
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Protocol
from urllib.parse import quote

import httpx

from sluice_runtime.config import SchemaRegistry
from sluice_runtime.contract import SCHEMA_REGISTRY_SECRET_KEYS
from sluice_runtime.schemas.wire import SCHEMA_NOT_FOUND, DecodeError

log = logging.getLogger("sluice.schemas")

REQUEST_TIMEOUT: Final = 10.0
RETRY_FIRST: Final = 0.5
RETRY_MAX: Final = 15.0
"""Backoff between attempts while the registry is unreachable: doubling, capped here."""
NOT_FOUND_TTL: Final = 30.0
"""How long "no such schema" is believed before the registry is asked again."""
MAX_ANSWER_BYTES: Final = 8 * 1024 * 1024
"""The most read of one registry answer: a schema is kilobytes, so more is a broken answer."""
_NOT_FOUND_CODES: Final = frozenset({40401, 40402, 40403})
"""The registry API's error codes for no such subject, version and schema."""

_ENV = {key: variable for variable, key in SCHEMA_REGISTRY_SECRET_KEYS.items()}


@dataclass(frozen=True, slots=True)
class RegistrySchema:
    """A schema as the registry holds it, with the schemas it references (by name)."""

    schema_type: str  # AVRO, PROTOBUF or JSON
    text: str
    references: dict[str, RegistrySchema] = field(default_factory=dict)


class RegistryUnavailable(Exception):
    """The registry could not answer; retried, never a record's failure."""


class Decoder(Protocol):
    """A record's bytes → its JSON value. The payload is ``data[start:]``: the record is
    read in place past its wire-format header (copying it out cost more than reading
    the header), and it must fill the rest of ``data`` exactly."""

    def __call__(self, data: bytes, start: int = 0, /) -> Any: ...


Compiler = Callable[[RegistrySchema, int], Decoder]
"""(schema, id) → its decoder; raises DecodeError when the schema cannot be used."""


class _Unusable:
    """A schema id that failed every record naming it: not found, or not usable."""

    __slots__ = ("error", "until")

    def __init__(self, error: DecodeError, until: float) -> None:
        self.error = error
        self.until = until


class Registry:
    """Schemas by id for one registry, compiled for one wire format each."""

    def __init__(self, spec: SchemaRegistry, environ: dict[str, str] | None = None) -> None:
        self.url = spec.url.rstrip("/")
        self._environ = dict(os.environ if environ is None else environ)
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()  # one fetch at a time; the cache is read without it
        # (format, id) → decoder; only ever added to, so lookups need no lock.
        self.decoders: dict[tuple[str, int], Decoder] = {}
        self._missing: dict[tuple[str, int], _Unusable] = {}
        self._schemas: dict[tuple[int, bool], RegistrySchema] = {}

    # -- lookups -------------------------------------------------------------------------

    def cached(self, fmt: str, schema_id: int) -> Decoder | None:
        """The decoder when known; raises the DecodeError of a schema the registry recently
        said it does not hold (or that cannot decode this format); None when the registry
        must be asked."""
        decoder = self.decoders.get((fmt, schema_id))
        if decoder is not None:
            return decoder
        missing = self._missing.get((fmt, schema_id))
        if missing is not None and missing.until > time.monotonic():
            raise DecodeError(missing.error.code, missing.error.detail)
        return None

    def schema(self, fmt: str, schema_id: int) -> RegistrySchema | None:
        """The schema behind a cached decoder, as fetched: what a worker process, which
        cannot ask the registry, compiles for itself (``install``)."""
        return self._schemas.get((schema_id, fmt == "protobuf"))

    def install(
        self, fmt: str, schema_id: int, schema: RegistrySchema, compile_schema: Compiler
    ) -> None:
        """Cache the decoder of a schema fetched elsewhere (by the runtime, for its worker);
        one that does not compile fails its records as in :meth:`resolve`."""
        with self._lock:
            self._schemas[schema_id, fmt == "protobuf"] = schema
            try:
                self.decoders[fmt, schema_id] = compile_schema(schema, schema_id)
            except DecodeError as error:
                self._missing[fmt, schema_id] = _Unusable(error, time.monotonic() + NOT_FOUND_TTL)

    def resolve(self, fmt: str, schema_id: int, compile_schema: Compiler) -> None:
        """Fetch and compile schema ``schema_id`` (blocking: call off the event loop).
        Afterwards :meth:`cached` answers for it; RegistryUnavailable when the registry
        could not be asked."""
        with self._lock:
            if self.decoders.get((fmt, schema_id)) is not None:
                return
            try:
                schema = self._schema(schema_id, serialized=fmt == "protobuf")
            except DecodeError as error:
                self._missing[fmt, schema_id] = _Unusable(error, time.monotonic() + NOT_FOUND_TTL)
                return
            try:
                decoder = compile_schema(schema, schema_id)
            except DecodeError as error:
                # A schema of another format, or one that does not compile: every record
                # naming it fails the same way, so the answer is kept like "not found".
                self._missing[fmt, schema_id] = _Unusable(error, time.monotonic() + NOT_FOUND_TTL)
                return
            self._missing.pop((fmt, schema_id), None)
            self.decoders[fmt, schema_id] = decoder

    async def fetch_async(self, fmt: str, schema_id: int, compile_schema: Compiler) -> None:
        """:meth:`resolve` in a thread, retried with backoff until the registry answers."""
        delay = RETRY_FIRST
        while True:
            try:
                await asyncio.to_thread(self.resolve, fmt, schema_id, compile_schema)
                return
            except Exception as error:
                # RegistryUnavailable, or an answer this client did not foresee: either way
                # the record waits, and the runtime goes on.
                log.warning(
                    "Schema registry unavailable fetching schema %d (%s); retrying in %.1fs, "
                    "the record waits",
                    schema_id,
                    error,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)

    # -- HTTP ----------------------------------------------------------------------------

    def _schema(self, schema_id: int, serialized: bool) -> RegistrySchema:
        """``serialized``: ask for Protobuf schemas as serialized descriptors, which
        Confluent Schema Registry makes from .proto text (registries that ignore the
        parameter answer with what they hold)."""
        known = self._schemas.get((schema_id, serialized))
        if known is not None:
            return known
        query = "?format=serialized" if serialized else ""
        body = self._get(f"/schemas/ids/{schema_id}{query}", f"schema id {schema_id}")
        schema = self._with_references(body, query, depth=0, fetched={})
        self._schemas[schema_id, serialized] = schema
        return schema

    def _with_references(
        self,
        body: dict[str, Any],
        query: str,
        depth: int,
        fetched: dict[tuple[str, int], RegistrySchema],
    ) -> RegistrySchema:
        """The schema in ``body`` with the schemas it references. ``fetched`` holds those
        already read for this schema id: references that share a schema (a diamond) fetch
        it once, so a chain of diamonds costs requests in its length, not 2 ** length."""
        if depth > 16:
            raise DecodeError(SCHEMA_NOT_FOUND, "schema references nest more than 16 deep")
        references: dict[str, RegistrySchema] = {}
        for name, subject, version in _references(body):
            known = fetched.get((subject, version))
            if known is None:
                referenced = self._get(
                    f"/subjects/{quote(subject, safe='')}/versions/{version}{query}",
                    f"referenced schema {subject} version {version}",
                )
                known = self._with_references(referenced, query, depth + 1, fetched)
                fetched[subject, version] = known
            references[name] = known
        schema_type = body.get("schemaType") or "AVRO"
        if not isinstance(schema_type, str):
            raise RegistryUnavailable(f"an answer whose schemaType is {schema_type!r}")
        return RegistrySchema(schema_type, body["schema"], references)

    def _get(self, path: str, what: str) -> dict[str, Any]:
        try:
            with self._http().stream("GET", self.url + path) as response:
                raw = _read_capped(response, what)
        except (httpx.HTTPError, httpx.InvalidURL) as error:
            raise RegistryUnavailable(f"{type(error).__name__}: {error}") from None
        if response.status_code == 404 and _error_code(raw) in _NOT_FOUND_CODES:
            raise DecodeError(SCHEMA_NOT_FOUND, f"the registry holds no {what}")
        if response.status_code != 200:
            raise RegistryUnavailable(f"HTTP {response.status_code} for {what}")
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):
            raise RegistryUnavailable(f"an answer for {what} that is not JSON") from None
        if not isinstance(body, dict) or not isinstance(body.get("schema"), str):
            raise RegistryUnavailable(f"an answer for {what} without a schema")
        return body

    def _http(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(
                timeout=REQUEST_TIMEOUT,
                auth=self._auth(),
                headers=self._bearer(),
                verify=self._tls(),
                follow_redirects=True,
            )
        return self._client

    def _secret(self, key: str) -> str:
        return self._environ.get(_ENV[key], "")

    def _auth(self) -> httpx.BasicAuth | None:
        username, password = self._secret("username"), self._secret("password")
        return httpx.BasicAuth(username, password) if username else None

    def _bearer(self) -> dict[str, str]:
        token = self._secret("token")
        return {"authorization": f"Bearer {token}"} if token else {}

    def _tls(self) -> ssl.SSLContext | bool:
        ca, cert, key = self._secret("ca.crt"), self._secret("tls.crt"), self._secret("tls.key")
        if not (ca or cert):
            return True
        context = ssl.create_default_context(cadata=ca) if ca else ssl.create_default_context()
        if cert and key:
            # ssl loads client certificates from files only; they live as long as the load.
            with tempfile.TemporaryDirectory() as folder:
                cert_file, key_file = f"{folder}/tls.crt", f"{folder}/tls.key"
                for path, text in ((cert_file, cert), (key_file, key)):
                    with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "w") as out:
                        out.write(text)
                context.load_cert_chain(cert_file, key_file)
        return context

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def _read_capped(response: httpx.Response, what: str) -> bytes:
    body = bytearray()
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) > MAX_ANSWER_BYTES:
            raise RegistryUnavailable(f"an answer for {what} over {MAX_ANSWER_BYTES} bytes")
    return bytes(body)


def _error_code(raw: bytes) -> object:
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return body.get("error_code") if isinstance(body, dict) else None


def _references(body: dict[str, Any]) -> list[tuple[str, str, int]]:
    """(name, subject, version) of each reference in a registry answer, checked: the answer
    comes from the network, and a malformed one must not become a crash or a URL."""
    references = body.get("references") or []
    if not isinstance(references, list):
        raise RegistryUnavailable(f"an answer whose references are {type(references).__name__}")
    checked = []
    for reference in references:
        if not isinstance(reference, dict):
            raise RegistryUnavailable(f"an answer with a reference {reference!r:.100}")
        name, subject, version = (reference.get(k) for k in ("name", "subject", "version"))
        if (
            not isinstance(name, str)
            or not isinstance(subject, str)
            or not isinstance(version, int)
            or isinstance(version, bool)
        ):
            raise RegistryUnavailable(f"an answer with a reference {reference!r:.100}")
        checked.append((name, subject, version))
    return checked
