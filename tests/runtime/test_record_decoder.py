"""The record decoder's envelope for keys that repeat: a key seen before is not parsed
again, and nothing a receiver could change is shared between records."""

from __future__ import annotations

from sluice_runtime.config import load_connector
from sluice_runtime.records import Record
from sluice_runtime.schemas.decoder import MAX_REMEMBERED_KEYS, RecordDecoder, build_decoder


def _decoder() -> RecordDecoder:
    connector = load_connector(
        {
            "apiVersion": "sluice.dev/v1alpha1",
            "kind": "Connector",
            "metadata": {"name": "keys", "namespace": "shop"},
            "spec": {
                "source": {
                    "kafka": {
                        "bootstrapServers": ["kafka:9092"],
                        "topics": ["orders"],
                        "valueFormat": "string",
                    }
                },
                "sink": {"uri": "http://function"},
            },
        }
    )
    decoder = build_decoder(connector.spec.source.kafka)
    assert decoder is not None
    return decoder


def _record(key: bytes | None, offset: int = 0) -> Record:
    return Record("orders", 0, offset, 1_700_000_000_000, key, b"v", [])


def test_repeated_keys_decode_as_the_first_time() -> None:
    decoder = _decoder()
    for key, expected, encoding in [
        (b"user-5", "user-5", "text"),
        (b"42", 42, None),
        (b"\xff\xfe", "//4=", "base64"),
        (b'"quoted"', "quoted", None),
    ]:
        first, again = (decoder.envelope(_record(key, offset)) for offset in (1, 2))
        for envelope in (first, again):
            assert envelope["key"] == expected
            assert envelope.get("keyEncoding") == encoding
        assert (first["offset"], again["offset"]) == (1, 2)


def test_a_key_that_decodes_to_an_object_is_not_shared() -> None:
    decoder = _decoder()
    first = decoder.envelope(_record(b'{"customer": 7}'))
    first["key"]["customer"] = 8  # what a receiver of the first envelope might do
    assert decoder.envelope(_record(b'{"customer": 7}'))["key"] == {"customer": 7}


def test_many_distinct_keys_stay_correct_past_the_bound() -> None:
    decoder = _decoder()
    for round_ in range(2):
        for i in range(MAX_REMEMBERED_KEYS + 10):
            key = b"user-%d" % i
            assert decoder.envelope(_record(key, round_))["key"] == key.decode()
