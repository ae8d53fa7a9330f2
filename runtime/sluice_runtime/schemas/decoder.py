"""The record decoder: a record's key and value bytes → the envelope filters, templates and
the function see, as source.kafka.keyFormat and valueFormat say (docs/schemas.md).

Decoding is CPU only: the schemas a record names must be in the registry's cache. When one
is not, :class:`SchemaNotCached` is raised and the caller fetches it off the event loop
(:func:`sluice_runtime.schemas.runtime.build_chunk_processor`) and decodes the record again;
offline tools fetch it in place (``fetch_in_place``).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from sluice_runtime.config import REGISTRY_FORMATS, KafkaSource, RecordFormat
from sluice_runtime.envelope import decode_bytes, envelope_of
from sluice_runtime.records import Record
from sluice_runtime.schemas.registry import Compiler, Decoder, Registry, RegistryUnavailable
from sluice_runtime.schemas.wire import (
    DESERIALIZATION_ERROR,
    HEADER_SIZE,
    SCHEMA_NOT_FOUND,
    DecodeError,
    schema_id,
)


class SchemaNotCached(Exception):
    """A record names a schema the cache does not hold yet: fetch it, then decode again."""

    def __init__(self, fmt: str, schema_id: int) -> None:
        super().__init__(f"{fmt} schema {schema_id} is not cached")
        self.fmt = fmt
        self.schema_id = schema_id


Side = Callable[[bytes], tuple[Any, str | None, int | None]]
"""Key or value bytes → (value, encoding flag or None, schema id or None)."""


def compiler_for(fmt: str) -> Compiler:
    if fmt == "avro":
        from sluice_runtime.schemas.avro import compile_avro

        return compile_avro
    if fmt == "protobuf":
        from sluice_runtime.schemas.protobuf import compile_protobuf

        return compile_protobuf
    from sluice_runtime.schemas.jsonschema import compile_json_schema

    compiler: Compiler = compile_json_schema
    return compiler


class RecordDecoder:
    """Builds the envelope of a record whose key or value is not read as plain JSON."""

    def __init__(
        self, kafka: KafkaSource, registry: Registry | None, *, fetch_in_place: bool = False
    ) -> None:
        self.registry = registry
        self.fetch_in_place = fetch_in_place
        self.key_format: RecordFormat = kafka.key_format
        self.value_format: RecordFormat = kafka.value_format
        self._key = _repeating(self._side(kafka.key_format))
        self._value = self._side(kafka.value_format)

    def envelope(self, record: Record) -> dict[str, Any]:
        """The record's envelope; DecodeError for a record that cannot be decoded,
        SchemaNotCached when a schema must be fetched first."""
        raw_value, raw_key = record.value, record.key
        value, value_flag, value_schema = (
            (None, None, None) if raw_value is None else self._value(raw_value)
        )
        key, key_flag, key_schema = (None, None, None) if raw_key is None else self._key(raw_key)
        envelope = envelope_of(record, key, value, key_flag, value_flag)
        if value_schema is not None:
            envelope["valueSchemaId"] = value_schema
        if key_schema is not None:
            envelope["keySchemaId"] = key_schema
        return envelope

    def schema_check(self, on_first: Callable[[str, int], None]) -> Callable[[Record], None]:
        """For records decoded in another process (the runtime's worker): a check of a
        record's headers that raises as :meth:`envelope` would for bytes not in the wire
        format or a schema the registry does not hold, and SchemaNotCached when a schema
        must be fetched first; it decodes nothing. ``on_first(format, id)`` is told of each
        schema the first time a record names it, once it is cached."""
        value = self._header_check(self.value_format, on_first)
        key = self._header_check(self.key_format, on_first)

        def check(record: Record) -> None:
            if value is not None and record.value is not None:
                value(record.value)
            if key is not None and record.key is not None:
                key(record.key)

        return check

    def _header_check(
        self, fmt: RecordFormat, on_first: Callable[[str, int], None]
    ) -> Callable[[bytes], None] | None:
        if fmt not in REGISTRY_FORMATS:
            return None  # text, bytes and JSON decode without a schema
        registry = self.registry
        assert registry is not None  # the spec's validator requires one for these formats
        known: set[bytes] = set()  # headers of cached schemas, as in _side

        def check(raw: bytes) -> None:
            header = raw[:HEADER_SIZE]
            if header in known:
                return
            found = schema_id(raw)
            if registry.cached(fmt, found) is None:
                raise SchemaNotCached(fmt, found)
            on_first(fmt, found)
            known.add(header)

        return check

    def _side(self, fmt: RecordFormat) -> Side:
        if fmt == "json":
            return _json
        if fmt == "string":
            return _string
        if fmt == "bytes":
            return _bytes
        assert fmt in REGISTRY_FORMATS
        registry = self.registry
        if registry is None:  # the spec's validator refuses this; kept as a clear error
            raise ValueError(f"{fmt} needs source.kafka.schemaRegistry")
        compile_schema = compiler_for(fmt)
        decoders = registry.decoders
        fetch_in_place = self.fetch_in_place
        # The decoders found, by the record's 5 header bytes: one look-up per record instead
        # of reading the id and looking up (format, id). The registry's cache only grows,
        # and only headers it holds a decoder for are kept, so this stays as small.
        by_header: dict[bytes, tuple[Decoder, int]] = {}

        def decode(raw: bytes) -> tuple[Any, str | None, int | None]:
            known = by_header.get(raw[:HEADER_SIZE])
            if known is not None:
                return known[0](raw, HEADER_SIZE), None, known[1]
            found = schema_id(raw)
            decoder = decoders.get((fmt, found))
            if decoder is None:
                decoder = registry.cached(fmt, found)
                if decoder is None:
                    if not fetch_in_place:
                        raise SchemaNotCached(fmt, found)
                    try:
                        registry.resolve(fmt, found, compile_schema)
                    except RegistryUnavailable as error:
                        raise DecodeError(
                            SCHEMA_NOT_FOUND, f"the registry could not be asked: {error}"
                        ) from None
                    decoder = registry.cached(fmt, found)
                    if decoder is None:  # pragma: no cover - resolve caches either answer
                        raise DecodeError(SCHEMA_NOT_FOUND, f"schema {found}")
            by_header[raw[:HEADER_SIZE]] = (decoder, found)
            return decoder(raw, HEADER_SIZE), None, found

        return decode


_IMMUTABLE = frozenset((str, int, float, bool, type(None)))
MAX_REMEMBERED_KEYS = 4096


def _repeating(side: Side) -> Side:
    """``side`` for keys, which repeat (users, devices, orders): what a key decoded to is
    kept when it cannot be changed by whoever receives it (text, a number), so a key seen
    before is a look-up rather than a parse. Bounded: emptied when full."""
    seen: dict[bytes, tuple[Any, str | None, int | None]] = {}

    def decode(raw: bytes) -> tuple[Any, str | None, int | None]:
        found = seen.get(raw)
        if found is None:
            found = side(raw)
            if type(found[0]) in _IMMUTABLE:
                if len(seen) >= MAX_REMEMBERED_KEYS:
                    seen.clear()
                seen[raw] = found
        return found

    return decode


def _json(raw: bytes) -> tuple[Any, str | None, int | None]:
    value, encoding = decode_bytes(raw)
    return value, encoding if encoding in ("text", "base64") else None, None


def _string(raw: bytes) -> tuple[Any, str | None, int | None]:
    try:
        return raw.decode("utf-8"), None, None
    except UnicodeDecodeError as error:
        raise DecodeError(DESERIALIZATION_ERROR, f"not UTF-8 text: {error}") from None


def _bytes(raw: bytes) -> tuple[Any, str | None, int | None]:
    return base64.b64encode(raw).decode("ascii"), "base64", None


def needs_decoder(kafka: KafkaSource) -> bool:
    """Whether keys or values are read other than as today's JSON-or-text-or-base64."""
    return kafka.key_format != "json" or kafka.value_format != "json"


def build_decoder(kafka: KafkaSource, *, fetch_in_place: bool = False) -> RecordDecoder | None:
    if not needs_decoder(kafka):
        return None
    registry = Registry(kafka.schema_registry) if kafka.schema_registry is not None else None
    return RecordDecoder(kafka, registry, fetch_in_place=fetch_in_place)
