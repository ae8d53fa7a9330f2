"""Avro payloads read by Python code generated once per writer schema.

fastavro's reader walks the schema for every value it reads and reads through a file
object, one call per field: about 16 µs for a ten-field record on the development machine,
most of the decode stage. The code generated here reads the bytes straight, with the
schema's walk done once: primitives inline (a one-byte varint, the common case, without a
call), a function per record, array and map, and the JSON mapping of ``avro.py`` (logical
types as strings, bytes as base64) applied as each field is read.

The schema is data from outside (a registry): nothing of it is written into the generated
source. Field names, enum symbols and converters reach the code as constants in the
namespace it runs in, under names made here (``c0``, ``c1``, ...).

:func:`build_reader` returns None for a schema it cannot read (a decimal without an
integer precision, a fixed without a size: shapes fastavro may still accept); the caller
keeps fastavro for those, after a reader made with ``check_only`` has walked the payload
within the same bounds. A union of several types is read here like any other: the branch
index says how its value maps (a logical type inside maps as in a plain field), where
fastavro's path can only guess from the Python object it made. The two are compared on
generated schemas and values in tests/runtime/test_avro_reader.py.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Callable
from decimal import Context
from typing import Any

Convert = Callable[[Any], Any]
Reader = Callable[[bytes, int], tuple[Any, int]]
"""(payload, position) → (the value read from there, the position after it)."""

_PRIMITIVES = frozenset(("null", "boolean", "int", "long", "float", "double", "string", "bytes"))
_U64 = (1 << 64) - 1
MAX_EMPTY_ITEMS = 100_000
EMPTY_ITEMS_FREE = 10_000
EMPTY_ITEMS_PER_BYTE = 4
"""Items that take no bytes (nulls, empty records) in one payload, at most: a count is all
it costs to claim them, so without a bound a few bytes could claim any memory (each costs
about 200 bytes decoded). The bound grows with the payload, from EMPTY_ITEMS_FREE plus
EMPTY_ITEMS_PER_BYTE a byte up to MAX_EMPTY_ITEMS, so nine bytes cannot claim 180 MB."""


def empty_items_room(payload_size: int) -> int:
    """How many items of no bytes a payload of ``payload_size`` bytes may hold."""
    return min(MAX_EMPTY_ITEMS, EMPTY_ITEMS_FREE + EMPTY_ITEMS_PER_BYTE * payload_size)


MAX_INLINED_DEPTH = 4
"""Records nested deeper than this are read by calling their function: the generated code
stays small whatever a schema's depth."""

MAX_DECIMAL_BYTES = 1024
"""The longest decimal read (2,466 digits): turning an integer into a decimal takes time
that grows with the square of its length (400 KB took 27 s of the event loop)."""


class Unsupported(Exception):
    """This schema is left to fastavro."""


class MalformedAvro(ValueError):
    """The payload is not a valid encoding under its schema."""


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    """A zigzag varint of more than two bytes, as fastavro reads it (64 bits, wrapping; an
    eleventh byte is refused). Written out byte by byte rather than as a loop: timestamps
    take six bytes, and the loop's bookkeeping was most of their cost."""
    b = buf[pos]
    n = b & 0x7F
    if b < 0x80:
        return (n >> 1) ^ -(n & 1), pos + 1
    b = buf[pos + 1]
    n |= (b & 0x7F) << 7
    if b < 0x80:
        return (n >> 1) ^ -(n & 1), pos + 2
    b = buf[pos + 2]
    n |= (b & 0x7F) << 14
    if b < 0x80:
        return (n >> 1) ^ -(n & 1), pos + 3
    b = buf[pos + 3]
    n |= (b & 0x7F) << 21
    if b < 0x80:
        return (n >> 1) ^ -(n & 1), pos + 4
    b = buf[pos + 4]
    n |= (b & 0x7F) << 28
    if b < 0x80:
        return (n >> 1) ^ -(n & 1), pos + 5
    b = buf[pos + 5]
    n |= (b & 0x7F) << 35
    if b < 0x80:
        return (n >> 1) ^ -(n & 1), pos + 6
    b = buf[pos + 6]
    n |= (b & 0x7F) << 42
    if b < 0x80:
        return (n >> 1) ^ -(n & 1), pos + 7
    b = buf[pos + 7]
    n |= (b & 0x7F) << 49
    if b < 0x80:
        return (n >> 1) ^ -(n & 1), pos + 8
    b = buf[pos + 8]
    n |= (b & 0x7F) << 56
    if b < 0x80:
        return (n >> 1) ^ -(n & 1), pos + 9
    b = buf[pos + 9]
    n = (n | (b & 0x7F) << 63) & _U64
    if b < 0x80:
        return (n >> 1) ^ -(n & 1), pos + 10
    raise MalformedAvro("a varint longer than 10 bytes")


def _short(what: str, wanted: int, left: int) -> MalformedAvro:
    return MalformedAvro(f"{what} of {wanted} bytes with {left} bytes left")


def _bad_index(what: str, index: int, size: int) -> MalformedAvro:
    return MalformedAvro(f"{what} index {index} is not below {size}")


def _base64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def decimal_of(schema: dict[str, Any]) -> Convert:
    """Bytes → the decimal as text, as fastavro reads it (the precision as its context's)."""
    scale = schema.get("scale", 0)
    precision = schema.get("precision")
    if not isinstance(scale, int) or not isinstance(precision, int) or precision < 1:
        raise Unsupported("a decimal without an integer precision and scale")
    context = Context(prec=precision)

    def convert(data: bytes) -> str:
        unscaled = int.from_bytes(_decimal_bytes(data), byteorder="big", signed=True)
        return str(context.create_decimal(unscaled).scaleb(-scale, context))

    return convert


def finite_or_text(number: float) -> float | str:
    """A float, or the Protobuf JSON mapping's text for what JSON cannot write ("NaN",
    "Infinity", "-Infinity"): JSON writers put null there, which no one sent."""
    if number - number == 0:
        return number
    if number != number:
        return "NaN"
    return "Infinity" if number > 0 else "-Infinity"


def _decimal_bytes(data: bytes) -> bytes:
    if len(data) > MAX_DECIMAL_BYTES:
        raise MalformedAvro(f"a decimal of {len(data)} bytes (at most {MAX_DECIMAL_BYTES})")
    return data


_BASE_NAMES = {
    "_decimal_bytes": _decimal_bytes,
    "finite_or_text": finite_or_text,
    "_varint": _varint,
    "_short": _short,
    "_bad_index": _bad_index,
    "_base64": _base64,
    "_f32": struct.Struct("<f").unpack_from,
    "_f64": struct.Struct("<d").unpack_from,
    "MalformedAvro": MalformedAvro,
    "empty_items_room": empty_items_room,
}


class _Generator:
    def __init__(
        self, named: dict[str, Any], logical: dict[str, tuple[frozenset[str], Convert | None]]
    ) -> None:
        self.named = named
        self.logical = logical
        self.check_only = False
        self.namespace: dict[str, Any] = dict(_BASE_NAMES)
        self.functions: list[str] = []
        self.record_functions: dict[str, str] = {}  # full name → its reader's name
        self.counter = 0
        self.uses_room = False  # an array or a map was met: items of no bytes are counted
        self.inlining: list[str] = []  # the records whose fields are being read inline

    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def constant(self, value: Any) -> str:
        name = self.fresh("c")
        self.namespace[name] = value
        return name

    # -- inline reads: lines that read one value into ``target`` and move ``pos`` ---------

    def read(self, schema: Any, target: str, pad: str) -> list[str]:
        if isinstance(schema, str):
            if schema in _PRIMITIVES:
                return self.primitive(schema, target, pad)
            definition = self.named.get(schema)
            if definition is None:
                raise Unsupported(f"unknown type {schema!r}")
            if isinstance(definition, dict) and definition.get("type") in ("record", "error"):
                return self.nested_record(definition, target, pad)
            return self.read(definition, target, pad)
        if isinstance(schema, list):
            return self.union(schema, target, pad)
        if not isinstance(schema, dict):
            raise Unsupported(f"a schema of type {type(schema).__name__}")
        kind = schema.get("type")
        logical = schema.get("logicalType")
        if logical == "decimal" and kind in ("bytes", "fixed"):
            if self.check_only:  # fastavro reads it next: only its length is checked here
                return self.raw_bytes(schema, target, pad, "_decimal_bytes(buf[pos:end])")
            convert = self.constant(decimal_of(schema))
            return self.raw_bytes(schema, target, pad, f"{convert}(buf[pos:end])")
        if isinstance(logical, str) and logical in self.logical:
            kinds, convert_logical = self.logical[logical]
            if kind in kinds:
                lines = self.primitive(kind, target, pad)
                if convert_logical is not None:
                    lines.append(f"{pad}{target} = {self.constant(convert_logical)}({target})")
                return lines
        if kind in ("record", "error"):
            return self.nested_record(schema, target, pad)
        if kind == "array":
            return [f"{pad}{target}, pos = {self.array(schema)}(buf, pos, room)"]
        if kind == "map":
            return [f"{pad}{target}, pos = {self.map(schema)}(buf, pos, room)"]
        if kind == "enum":
            symbols = schema.get("symbols")
            if not isinstance(symbols, list):
                raise Unsupported("an enum without symbols")
            table = self.constant(tuple(symbols))
            return [
                *self.varint("index", pad),
                f"{pad}if index < 0 or index >= {len(symbols)}:",
                f"{pad}    raise _bad_index('enum', index, {len(symbols)})",
                f"{pad}{target} = {table}[index]",
            ]
        if kind == "fixed":
            return self.raw_bytes(schema, target, pad, "_base64(buf[pos:end])")
        if isinstance(kind, (str, dict, list)):
            return self.read(kind, target, pad)
        raise Unsupported(f"a schema whose type is {kind!r}")

    def varint(self, target: str, pad: str) -> list[str]:
        """One and two bytes inline (lengths, small numbers, most ids), longer ones by a
        call."""
        return [
            f"{pad}b = buf[pos]",
            f"{pad}if b < 128:",
            f"{pad}    {target} = (b >> 1) ^ -(b & 1)",
            f"{pad}    pos += 1",
            f"{pad}elif buf[pos + 1] < 128:",
            f"{pad}    b = (b & 127) | (buf[pos + 1] << 7)",
            f"{pad}    {target} = (b >> 1) ^ -(b & 1)",
            f"{pad}    pos += 2",
            f"{pad}else:",
            f"{pad}    {target}, pos = _varint(buf, pos)",
        ]

    def primitive(self, kind: str, target: str, pad: str) -> list[str]:
        if kind in ("int", "long"):
            return self.varint(target, pad)
        if kind == "string":
            return self.sized(target, pad, "buf[pos:end].decode()", "a string")
        if kind == "bytes":
            return self.sized(target, pad, "_base64(buf[pos:end])", "bytes")
        if kind == "boolean":
            return [f"{pad}{target} = buf[pos] != 0", f"{pad}pos += 1"]
        if kind in ("float", "double"):
            read, size = ("_f32", 4) if kind == "float" else ("_f64", 8)
            return [
                f"{pad}{target} = {read}(buf, pos)[0]",
                f"{pad}pos += {size}",
                f"{pad}if {target} - {target}:  # NaN or an infinity: not a JSON number",
                f"{pad}    {target} = finite_or_text({target})",
            ]
        if kind == "null":
            return [f"{pad}{target} = None"]
        raise Unsupported(f"type {kind!r}")

    def sized(self, target: str, pad: str, value: str, what: str) -> list[str]:
        """A length, then that many bytes, mapped by the expression ``value``."""
        return [
            *self.varint("size", pad),
            f"{pad}end = pos + size",
            f"{pad}if size < 0 or end > buflen:",
            f"{pad}    raise _short({what!r}, size, buflen - pos)",
            f"{pad}{target} = {value}",
            f"{pad}pos = end",
        ]

    def raw_bytes(self, schema: dict[str, Any], target: str, pad: str, value: str) -> list[str]:
        if schema.get("type") == "bytes":
            return self.sized(target, pad, value, "bytes")
        size = schema.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise Unsupported("a fixed without a size")
        return [
            f"{pad}end = pos + {size}",
            f"{pad}if end > buflen:",
            f"{pad}    raise _short('a fixed', {size}, buflen - pos)",
            f"{pad}{target} = {value}",
            f"{pad}pos = end",
        ]

    def union(self, branches: list[Any], target: str, pad: str) -> list[str]:
        lines = self.varint("branch", pad)
        for index, branch in enumerate(branches):
            keyword = "if" if index == 0 else "elif"
            lines.append(f"{pad}{keyword} branch == {index}:")
            lines += self.read(branch, target, pad + "    ")
        lines += [
            f"{pad}else:",
            f"{pad}    raise _bad_index('union branch', branch, {len(branches)})",
        ]
        return lines

    # -- functions: def fN(buf, pos) -> (value, pos) ------------------------------------------

    def record(self, schema: dict[str, Any]) -> str:
        name = schema.get("name")
        if isinstance(name, str) and name in self.record_functions:
            return self.record_functions[name]
        function = self.fresh("record")
        if isinstance(name, str):  # before its fields: a recursive reference finds it
            self.record_functions[name] = function
        outer, self.inlining = self.inlining, [name] if isinstance(name, str) else []
        try:
            body, value = self.record_fields(schema, "    ")
        finally:
            self.inlining = outer
        self.functions.append(
            "\n".join(
                [
                    f"def {function}(buf, pos, room):",
                    "    buflen = len(buf)",
                    *body,
                    f"    return {value}, pos",
                ]
            )
        )
        return function

    def nested_record(self, schema: dict[str, Any], target: str, pad: str) -> list[str]:
        """A record inside another: its fields read in the enclosing code (a call and a
        tuple less per nested record), unless it is one of the records being inlined
        already (a recursive type) or nesting is deep, where its function is called."""
        name = schema.get("name")
        if len(self.inlining) >= MAX_INLINED_DEPTH or not isinstance(name, str):
            return [f"{pad}{target}, pos = {self.record(schema)}(buf, pos, room)"]
        if name in self.inlining:
            return [f"{pad}{target}, pos = {self.record(schema)}(buf, pos, room)"]
        self.inlining.append(name)
        try:
            body, value = self.record_fields(schema, pad, self.fresh("r") + "_")
        finally:
            self.inlining.pop()
        return [*body, f"{pad}{target} = {value}"]

    def record_fields(
        self, schema: dict[str, Any], pad: str, prefix: str = "v"
    ) -> tuple[list[str], str]:
        """Lines that read a record's fields into {prefix}0, {prefix}1, ..., and the
        expression of the record's value made of them."""
        fields = schema.get("fields")
        if not isinstance(fields, list):
            raise Unsupported("a record without fields")
        body: list[str] = []
        entries: list[str] = []
        for index, field in enumerate(fields):
            body += self.read(field["type"], f"{prefix}{index}", pad)
            entries.append(f"{self.constant(field['name'])}: {prefix}{index}")
        return body, f"{{{', '.join(entries)}}}"

    def array(self, schema: dict[str, Any]) -> str:
        self.uses_room = True
        function = self.fresh("array")
        item = self.read(schema.get("items"), "item", " " * 12)
        self.functions.append(
            "\n".join(
                [
                    f"def {function}(buf, pos, room):",
                    "    buflen = len(buf)",
                    "    items = []",
                    "    append = items.append",
                    *self.blocks(schema.get("items")),
                    "        for _ in range(count):",
                    *item,
                    "            append(item)",
                ]
            )
        )
        return function

    def map(self, schema: dict[str, Any]) -> str:
        self.uses_room = True
        function = self.fresh("map")
        key = self.primitive("string", "key", " " * 12)
        value = self.read(schema.get("values"), "value", " " * 12)
        self.functions.append(
            "\n".join(
                [
                    f"def {function}(buf, pos, room):",
                    "    buflen = len(buf)",
                    "    items = {}",
                    *self.blocks("string"),
                    "        for _ in range(count):",
                    *key,
                    *value,
                    "            items[key] = value",
                ]
            )
        )
        return function

    def blocks(self, item: Any) -> list[str]:
        """The block loop of arrays and maps: a count (negative: a byte size follows), the
        items, until a count of 0. A count is checked before anything is made for it:
        against the bytes left when each item takes some, else against what is left of
        the payload's allowance (``room``, empty_items_room)."""
        if self.may_be_empty(item):
            check = [
                "        room[0] -= count",
                "        if room[0] < 0:",
                "            raise MalformedAvro(",
                "                f'more than {empty_items_room(len(buf))} items of no bytes'",
                "                f' in a payload of {len(buf)} bytes')",
            ]
        else:
            check = [
                "        if count > buflen - pos:",
                "            raise MalformedAvro(f'{count} items in {buflen - pos} bytes')",
            ]
        return [
            "    while True:",
            *self.varint("count", "        "),
            "        if count == 0:",
            "            return items, pos",
            "        if count < 0:",
            "            count = -count",
            *self.varint("_", "            "),
            *check,
        ]

    def may_be_empty(self, schema: Any, inside: frozenset[str] = frozenset()) -> bool:
        """Whether a value of ``schema`` can take no bytes: null, a fixed of size 0, a
        record of such fields. ``inside``: the records this one is nested in; one met again
        there is taken as not empty (a value of it inside itself ends in something that
        takes bytes). A record used twice side by side is as empty as it is once."""
        if isinstance(schema, str):
            if schema == "null":
                return True
            if schema in _PRIMITIVES or schema in inside:
                return False
            return self.may_be_empty(self.named.get(schema), inside)
        if not isinstance(schema, dict):
            return False  # a union writes its branch's index
        kind = schema.get("type")
        if kind == "fixed":
            return schema.get("size") == 0
        if kind in ("record", "error"):
            name = schema.get("name")
            if isinstance(name, str):
                if name in inside:
                    return False
                inside = inside | {name}
            return all(self.may_be_empty(field.get("type"), inside) for field in schema["fields"])
        if isinstance(kind, (str, dict)) and kind not in _PRIMITIVES | {"array", "map", "enum"}:
            return self.may_be_empty(kind, inside)
        return kind == "null"


def build_reader(
    parsed: Any,
    named: dict[str, Any],
    logical: dict[str, tuple[frozenset[str], Convert | None]],
    *,
    check_only: bool = False,
) -> Reader | None:
    """The reader of values written with ``parsed`` (fastavro.parse_schema's form, its
    named types in ``named``), mapping values to JSON types as ``logical`` says for the
    logical types read as their underlying type; None when fastavro should read them.

    ``check_only``: a reader of every schema, its values unmapped (logical types as their
    underlying type), run before fastavro reads a payload this module leaves to it: what
    it refuses (more items of no bytes than empty_items_room, counts beyond the bytes left)
    fastavro would make a list of, however long."""
    generator = _Generator(named, {} if check_only else logical)
    generator.check_only = check_only
    try:
        lines = generator.read(parsed, "value", "    ")
    except (Unsupported, RecursionError):
        return None
    source = "\n\n".join(
        [
            *generator.functions,
            "\n".join(
                [
                    "def entry(buf, pos):",
                    "    buflen = len(buf)",
                    "    room = [empty_items_room(buflen)]",
                    *lines,
                    "    return value, pos",
                ]
            ),
        ]
    )
    namespace = generator.namespace
    exec(
        compile(source, "<avro reader>", "exec"), namespace
    )  # generated above, from no text of the schema
    entry: Reader = namespace["entry"]
    return entry


def build_framed_decoder(
    parsed: Any,
    named: dict[str, Any],
    logical: dict[str, tuple[frozenset[str], Convert | None]],
    undecodable: Callable[[Exception], Exception],
    bytes_left: Callable[[int], Exception],
) -> Callable[..., Any] | None:
    """``decode(buf, start=0)``: the value written with ``parsed`` in ``buf[start:]``, which
    it must fill exactly (else ``bytes_left(count)`` is raised; a payload that does not
    decode raises ``undecodable(error)``). It reads the record's bytes in place, past the
    wire format's header, and the top-level record's fields in its own body: one function
    call a value instead of four and no copy of the payload, a tenth of the decode stage
    for a ten-field record.

    None when build_reader would return None, or when the schema has an array or a map:
    their bound on items of no bytes (empty_items_room) counts the payload's bytes, so
    those keep build_reader's reader of the payload alone."""
    generator = _Generator(named, logical)
    generator.namespace["undecodable"] = undecodable
    generator.namespace["bytes_left"] = bytes_left
    pad = "        "
    try:
        top = named.get(parsed) if isinstance(parsed, str) else parsed
        if isinstance(top, dict) and top.get("type") in ("record", "error"):
            generator.record(top)  # its function, for a recursive reference to it
            name = top.get("name")
            generator.inlining = [name] if isinstance(name, str) else []
            lines, value = generator.record_fields(top, pad)
            lines.append(f"{pad}value = {value}")
        else:
            lines = generator.read(parsed, "value", pad)
    except (Unsupported, RecursionError):
        return None
    if generator.uses_room:
        return None
    source = "\n\n".join(
        [
            *generator.functions,
            "\n".join(
                [
                    "def decode(buf, pos=0):",
                    "    buflen = len(buf)",
                    "    room = None  # no array or map: nothing counts items of no bytes",
                    "    try:",
                    *lines,
                    "    except Exception as error:",
                    "        raise undecodable(error) from None",
                    "    if pos != buflen:",
                    "        raise bytes_left(buflen - pos)",
                    "    return value",
                ]
            ),
        ]
    )
    namespace = generator.namespace
    exec(
        compile(source, "<avro reader>", "exec"), namespace
    )  # generated above, from no text of the schema
    decode: Callable[..., Any] = namespace["decode"]
    return decode
