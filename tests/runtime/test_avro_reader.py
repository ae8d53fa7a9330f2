"""The reader generated per Avro schema (schemas/avro_reader.py) against fastavro's, the
reference: on generated schemas and values written by fastavro's encoder, the two decode
every payload to the same JSON value; on payloads cut short or with bytes changed, the
generated reader fails cleanly (DecodeError) or reads what fastavro reads."""

from __future__ import annotations

import io
import json
import math
import random
from typing import Any

import fastavro
import fastavro.utils
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sluice_runtime.schemas.avro import _generated_reader, compile_avro
from sluice_runtime.schemas.avro_reader import MAX_DECIMAL_BYTES, empty_items_room
from sluice_runtime.schemas.registry import Decoder, RegistrySchema
from sluice_runtime.schemas.wire import DecodeError

PRIMITIVES = ["null", "boolean", "int", "long", "float", "double", "string", "bytes"]
LOGICAL: list[dict[str, Any]] = [
    {"type": "long", "logicalType": "timestamp-millis"},
    {"type": "long", "logicalType": "timestamp-micros"},
    {"type": "long", "logicalType": "timestamp-nanos"},
    {"type": "long", "logicalType": "local-timestamp-millis"},
    {"type": "long", "logicalType": "local-timestamp-micros"},
    {"type": "int", "logicalType": "date"},
    {"type": "int", "logicalType": "time-millis"},
    {"type": "long", "logicalType": "time-micros"},
    {"type": "string", "logicalType": "uuid"},
    {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 3},
    {"type": "int", "logicalType": "timestamp-millis"},  # not a valid pairing: a plain int
]


@st.composite
def avro_types(draw: st.DrawFn, depth: int, names: list[str], space: str = "gen") -> Any:
    """An Avro type; ``names`` collects the full names of the named types defined so far
    (used again by full name). A named type sometimes has a namespace of its own, which
    its full name and the types inside it take (``space`` is the enclosing one).
    Not recursive: fastavro's value generator makes ten items of every array, so recursive
    types are compared on the hand-written schemas below instead."""
    choices = ["primitive", "logical"]
    if names:
        choices.append("reference")
    if depth < 3:
        choices += ["record", "array", "map", "optional", "union", "enum", "fixed"]
    kind = draw(st.sampled_from(choices))
    if kind == "primitive":
        return draw(st.sampled_from(PRIMITIVES))
    if kind == "logical":
        return dict(draw(st.sampled_from(LOGICAL)))
    if kind == "reference":
        return draw(st.sampled_from(names))
    own = draw(st.sampled_from([None, None, "other", "gen.inner"]))
    named: dict[str, Any] = {} if own is None else {"namespace": own}
    inside = space if own is None else own
    if kind == "record":
        name = f"R{draw(st.uuids()).hex[:12]}"
        count = draw(st.integers(0, 5))
        record = {
            "type": "record",
            "name": name,
            **named,
            "fields": [
                {"name": f"f{i}", "type": draw(avro_types(depth + 1, names, inside))}
                for i in range(count)
            ],
        }
        names.append(f"{inside}.{name}")
        return record
    if kind == "array":
        return {"type": "array", "items": draw(avro_types(depth + 1, names, space))}
    if kind == "map":
        return {"type": "map", "values": draw(avro_types(depth + 1, names, space))}
    if kind == "optional":
        value = draw(avro_types(depth + 1, names, space).filter(lambda t: _plain(t) != "null"))
        return ["null", value] if draw(st.booleans()) else [value, "null"]
    if kind == "union":
        # Branches of distinct kinds, as Avro requires.
        branches: list[Any] = draw(
            st.lists(st.sampled_from(PRIMITIVES), min_size=2, max_size=4, unique=True)
        )
        if draw(st.booleans()):
            # Not timestamp-nanos: fastavro (1.13) has no such logical type, and in a union
            # of several types its path cannot tell the int from a timestamp. Mapped in
            # test_avro_mapping.py instead.
            branches.append(dict(draw(st.sampled_from(LOGICAL[:2]))))
            branches = [b for b in branches if b != "long"]
        return branches
    if kind == "enum":
        name = f"E{draw(st.uuids()).hex[:12]}"
        names.append(f"{inside}.{name}")
        symbols = [f"S{i}" for i in range(draw(st.integers(1, 4)))]
        return {"type": "enum", "name": name, **named, "symbols": symbols}
    name = f"F{draw(st.uuids()).hex[:12]}"
    names.append(f"{inside}.{name}")
    fixed: dict[str, Any] = {
        "type": "fixed",
        "name": name,
        **named,
        "size": draw(st.integers(0, 9)),
    }
    if draw(st.booleans()) and fixed["size"] > 0:
        digits = min(20, int((8 * fixed["size"] - 1) * math.log10(2)))  # what fits
        fixed.update(logicalType="decimal", precision=digits, scale=min(2, digits))
    return fixed


def _plain(avro_type: Any) -> Any:
    return avro_type.get("type") if isinstance(avro_type, dict) else avro_type


@st.composite
def record_schemas(draw: st.DrawFn) -> dict[str, Any]:
    names: list[str] = []
    fields = [
        {"name": f"f{i}", "type": draw(avro_types(0, names))}
        for i in range(draw(st.integers(1, 6)))
    ]
    return {"type": "record", "name": "Top", "namespace": "gen", "fields": fields}


def decoders(schema: dict[str, Any]) -> tuple[Decoder, Decoder]:
    text = json.dumps(schema)
    return (
        compile_avro(RegistrySchema("AVRO", text), 1),
        compile_avro(RegistrySchema("AVRO", text), 1, generated=False),
    )


def payloads(schema: dict[str, Any], count: int, seed: int) -> list[bytes]:
    parsed = fastavro.parse_schema(schema)
    random.seed(seed)
    written = []
    for value in fastavro.utils.generate_many(schema, count):
        out = io.BytesIO()
        fastavro.schemaless_writer(out, parsed, value)
        written.append(out.getvalue())
    return written


def outcome(decode: Decoder, payload: bytes) -> str:
    """The decoded value as its repr (exact for floats, NaN equal to NaN), or the failure;
    the same whether the payload is read alone or in place after a wire-format header, as
    the runtime reads it."""
    alone = _outcome(decode, payload, 0)
    assert _outcome(decode, b"\x00\x00\x00\x00\x01" + payload, 5) == alone
    return alone


def _outcome(decode: Decoder, data: bytes, start: int) -> str:
    try:
        return repr(decode(data, start))
    except DecodeError:
        return "DecodeError"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(record_schemas(), st.integers(0, 2**32))
def test_the_generated_reader_decodes_as_fastavro(schema: dict[str, Any], seed: int) -> None:
    generated, reference = decoders(schema)
    for payload in payloads(schema, 8, seed):
        expected = outcome(reference, payload)
        assert expected != "DecodeError", "fastavro reads what fastavro wrote"
        assert outcome(generated, payload) == expected, json.dumps(schema)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(record_schemas(), st.integers(0, 2**32), st.data())
def test_damaged_payloads_fail_cleanly_or_read_as_fastavro_reads_them(
    schema: dict[str, Any], seed: int, data: st.DataObject
) -> None:
    generated, reference = decoders(schema)
    for payload in payloads(schema, 3, seed):
        if payload:
            cut = data.draw(st.integers(0, len(payload) - 1))
            assert outcome(generated, payload[:cut]) == "DecodeError", "a payload cut short"
            damaged = bytearray(payload)
            damaged[data.draw(st.integers(0, len(payload) - 1))] = data.draw(st.integers(0, 255))
            read = outcome(generated, bytes(damaged))
            if read != "DecodeError":  # valid by every check: fastavro must agree
                assert read == outcome(reference, bytes(damaged))


RECURSIVE = [
    {  # a linked list
        "type": "record",
        "name": "Node",
        "fields": [
            {"name": "value", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "next", "type": ["null", "Node"]},
        ],
    },
    {  # recursion by full name, beside a named type used again
        "type": "record",
        "name": "Chain",
        "namespace": "t",
        "fields": [
            {"name": "id", "type": {"type": "fixed", "name": "Id", "size": 4}},
            {"name": "seen", "type": ["null", {"type": "map", "values": "Id"}]},
            {"name": "next", "type": ["null", "t.Chain"]},
        ],
    },
]


@pytest.mark.parametrize("schema", RECURSIVE, ids=["list", "chain"])
@pytest.mark.parametrize("seed", range(5))
def test_recursive_types_decode_as_fastavro(schema: dict[str, Any], seed: int) -> None:
    generated, reference = decoders(schema)
    for payload in payloads(schema, 20, seed):
        assert outcome(generated, payload) == outcome(reference, payload)


def test_the_generated_reader_is_used_where_it_reads_alike() -> None:
    """Every shape is read by the generated reader, a union of several types with a logical
    type inside too: it knows the branch, so it maps the value as that branch says (the
    fastavro path could only guess from the Python object)."""
    from sluice_runtime.schemas.avro import _generated_reader

    def reader_for(field_type: Any) -> object:
        schema = {"type": "record", "name": "R", "fields": [{"name": "f", "type": field_type}]}
        return _generated_reader(RegistrySchema("AVRO", json.dumps(schema)))

    assert reader_for({"type": "array", "items": ["null", LOGICAL[0]]}) is not None
    assert reader_for(["string", "long", "bytes"]) is not None
    assert reader_for(["string", LOGICAL[0]]) is not None


def test_records_without_arrays_or_maps_are_read_in_place() -> None:
    """The runtime's common case reads the payload past its header without copying it;
    arrays and maps count the payload's bytes for their bound, so they keep the reader of
    the payload alone (both are compared with fastavro above)."""
    from sluice_runtime.schemas.avro import _framed_decoder

    def framed(field_type: Any) -> object:
        schema = {"type": "record", "name": "R", "fields": [{"name": "f", "type": field_type}]}
        return _framed_decoder(RegistrySchema("AVRO", json.dumps(schema)), 1)

    assert framed(["null", "string", LOGICAL[0]]) is not None
    assert framed({"type": "record", "name": "In", "fields": [{"name": "g", "type": "long"}]})
    assert framed({"type": "array", "items": "long"}) is None
    assert framed({"type": "map", "values": "long"}) is None


def test_names_and_symbols_from_the_schema_stay_data() -> None:
    """A schema is outside input: names that look like code are read as names."""
    hostile = "x'] ; __import__('os')._exit(3) #"
    schema = {
        "type": "record",
        "name": "R",
        "fields": [
            {"name": hostile, "type": {"type": "enum", "name": "E", "symbols": ["A", "B"]}},
            {"name": "f", "type": {"type": "map", "values": "string"}},
        ],
    }
    payload = b"\x02" + b"\x02" + b"\x02" + hostile.encode()[:1] + b"\x02v" + b"\x00"
    generated = compile_avro(RegistrySchema("AVRO", json.dumps(schema)), 1)
    assert generated(payload) == {hostile: "B", "f": {"x": "v"}}


def zigzag(value: int) -> bytes:
    number = value * 2 if value >= 0 else -value * 2 - 1
    out = bytearray()
    while number >= 0x80:
        out.append(number & 0x7F | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)


def test_counts_are_refused_before_anything_is_made_for_them() -> None:
    """A count is all it costs to claim items that take no bytes (nulls, empty records):
    a payload may claim a number of them that grows with its size (empty_items_room), in
    any number of blocks or arrays; items that take bytes may not outnumber the bytes left."""
    nulls = compile_avro(RegistrySchema("AVRO", json.dumps({"type": "array", "items": "null"})), 1)
    assert nulls(zigzag(3) + zigzag(0)) == [None, None, None]
    allowed = empty_items_room(5)  # each payload below is 5 bytes: two blocks and the end
    half = allowed // 2
    assert len(nulls(zigzag(half) + zigzag(allowed - half) + zigzag(0))) == allowed
    too_many = zigzag(half) + zigzag(allowed - half + 1) + zigzag(0)
    assert len(too_many) == 5
    with pytest.raises(DecodeError, match=f"more than {allowed} items of no bytes"):
        nulls(too_many)
    assert empty_items_room(9) < 20_000  # nine bytes claim at most a few MB, not 180 MB
    empty = {"type": "record", "name": "Empty", "fields": []}
    nested = {
        "type": "array",
        "items": {
            "type": "record",
            "name": "Holder",
            "fields": [{"name": "empties", "type": {"type": "array", "items": empty}}],
        },
    }
    holders = compile_avro(RegistrySchema("AVRO", json.dumps(nested)), 1)
    # One holder's array: over half the bound of the 8-byte payload, in three bytes.
    claim = zigzag(empty_items_room(8) // 2 + 1) + zigzag(0)
    with pytest.raises(DecodeError, match="items of no bytes"):
        holders(zigzag(2) + claim + claim + zigzag(0))  # spread over arrays
    # An empty record named again beside its definition takes no bytes either: ten of them
    # in the two bytes of their block's count and end (found refused by the differential).
    again = {
        "type": "record",
        "name": "Top",
        "fields": [
            {"name": "first", "type": empty},
            {"name": "more", "type": {"type": "array", "items": "Empty"}},
        ],
    }
    assert compile_avro(RegistrySchema("AVRO", json.dumps(again)), 1)(zigzag(10) + zigzag(0)) == {
        "first": {},
        "more": [{}] * 10,
    }
    # A union of several types with a logical type, once left to fastavro, is generated
    # too, within the same bounds.
    mixed = {
        "type": "record",
        "name": "Mixed",
        "fields": [
            {"name": "when", "type": ["string", {"type": "int", "logicalType": "date"}]},
            {"name": "nulls", "type": {"type": "array", "items": "null"}},
        ],
    }
    mixed_schema = RegistrySchema("AVRO", json.dumps(mixed))
    assert _generated_reader(mixed_schema) is not None
    fallback = compile_avro(mixed_schema, 1)
    date = zigzag(1) + zigzag(19000)  # the second branch: a date
    assert fallback(date + zigzag(2) + zigzag(0)) == {"when": "2022-01-08", "nulls": [None, None]}
    with pytest.raises(DecodeError, match="items of no bytes"):
        fallback(date + zigzag(1 << 40) + zigzag(0))
    with pytest.raises(DecodeError, match="does not decode"):
        fallback(zigzag(5) + zigzag(0))  # no such branch
    strings = compile_avro(
        RegistrySchema("AVRO", json.dumps({"type": "array", "items": "string"})), 1
    )
    with pytest.raises(DecodeError, match="1000 items in 1 bytes"):
        strings(zigzag(1000) + zigzag(0))


DECIMAL = {"type": "bytes", "logicalType": "decimal", "precision": 4000}


@pytest.mark.parametrize(
    ("field_type", "branch"),
    [
        pytest.param(DECIMAL, b"", id="generated"),
        # A union of several types with a logical type inside: the shape left to fastavro,
        # walked by the checking reader first.
        pytest.param(["null", "string", DECIMAL], zigzag(2), id="fastavro"),
    ],
)
def test_a_decimal_longer_than_the_bound_fails_before_its_digits_are_made(
    field_type: Any, branch: bytes
) -> None:
    """Digits cost time in the square of the length (400 KB took 27 s): 1,024 bytes are
    read, a byte more is the record's DESERIALIZATION_ERROR, at once."""
    schema = {"type": "record", "name": "Price", "fields": [{"name": "amount", "type": field_type}]}
    decode = compile_avro(RegistrySchema("AVRO", json.dumps(schema)), 1)
    longest = b"\x00" * (MAX_DECIMAL_BYTES - 1) + b"\x07"
    assert decode(branch + zigzag(len(longest)) + longest) == {"amount": "7"}
    too_long = b"\x00" * 400_000 + b"\x07"
    with pytest.raises(DecodeError, match="a decimal of 400001 bytes"):
        decode(branch + zigzag(len(too_long)) + too_long)


def _long_encodings() -> list[bytes]:
    """Every length a long takes, at both ends of each, non-canonical padding (a value
    continued with zero groups, which writers may emit), and 10- and 11-byte varints."""
    values = [0, 1, -1, 63, -64, 64, -65]
    for bits in range(7, 64, 7):
        values += [2 ** (bits - 1) - 1, -(2 ** (bits - 1)), 2 ** (bits - 1), -(2 ** (bits - 1)) - 1]
    values += [2**63 - 1, -(2**63)]
    encodings = [zigzag(value) for value in values if -(2**63) <= value < 2**63]
    encodings += [b"\x80\x00", b"\xff\x80\x80\x00", b"\x81" + b"\x80" * 8 + b"\x01"]
    encodings += [b"\xff" * 9 + b"\x7f", b"\xff" * 3]  # ten bytes; cut short
    return encodings


@pytest.mark.parametrize(
    "schema",
    [
        "long",
        {
            "type": "record",
            "name": "R",
            "fields": [{"name": "n", "type": "long"}, {"name": "s", "type": "string"}],
        },
    ],
    ids=["top", "in-record"],
)
def test_longs_of_every_length_decode_as_fastavro(schema: Any) -> None:
    generated, reference = decoders(schema)
    tail = b"" if schema == "long" else zigzag(2) + b"ok"
    for encoding in _long_encodings():
        payload = encoding + tail
        assert outcome(generated, payload) == outcome(reference, payload), encoding.hex()
    # fastavro reads varints of any length; more than ten bytes cannot be a long, so a
    # payload could make an integer of any size out of them.
    assert outcome(generated, b"\xff" * 10 + b"\x01" + tail) == "DecodeError"


def test_records_nested_deeper_than_inlined_decode_as_fastavro() -> None:
    """Nested records are read inline down to MAX_INLINED_DEPTH, then by their functions;
    the same record type twice side by side, and a union holding one, read alike."""
    from sluice_runtime.schemas.avro_reader import MAX_INLINED_DEPTH

    inner: Any = {"type": "record", "name": "L0", "fields": [{"name": "n", "type": "long"}]}
    for level in range(1, MAX_INLINED_DEPTH + 3):
        inner = {
            "type": "record",
            "name": f"L{level}",
            "fields": [
                {"name": "a", "type": inner},
                {"name": "b", "type": "string"},
                {"name": "c", "type": ["null", f"L{level - 1}"]},
            ],
        }
    top = {
        "type": "record",
        "name": "Top",
        "fields": [{"name": "x", "type": inner}, {"name": "y", "type": f"L{MAX_INLINED_DEPTH}"}],
    }
    generated, reference = decoders(top)
    for seed in range(5):
        for payload in payloads(top, 10, seed):
            assert outcome(generated, payload) == outcome(reference, payload)
