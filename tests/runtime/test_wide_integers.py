"""Integers beyond 64 bits arrive at the function with their value, whether the Connector
passes records through, filters them, or transforms them with a template or a UDF; and the
filter compares them exactly (2**64 does not match 2**64 + 1)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from testkit.function_server import ThreadedFunctionServer
from tests.runtime.test_failure_handling import read_all
from tests.support import RuntimeThread, committed, connector_manifest, produce, wait_for

pytestmark = pytest.mark.integration

TWO_64 = 18446744073709551616
# The id is what the filter selects on; the rest are values a decode through float changes.
RECORDS = [
    ("wanted", b'{"id": 18446744073709551617, "neg": -9223372036854775809, "huge": %d}' % 10**30),
    ("near", b'{"id": 18446744073709551616, "neg": -1, "huge": 0}'),
    ("plain", b'{"id": 1, "neg": -1, "huge": 0}'),
]
WANTED = {"id": TWO_64 + 1, "neg": -(2**63) - 1, "huge": 10**30}

UDF = """
def handle_message(event, context):
    value = event["value"]
    return {"id": value["id"], "neg": value["neg"], "huge": value["huge"], "next": value["id"] + 1}
"""

TRANSFORMS: dict[str, tuple[dict[str, Any] | None, Callable[[Any], Any]]] = {
    "none": (None, lambda data: data["value"]),
    "template": (
        {
            "template": {
                "template": '{"id": <$.value.id>, "neg": <$.value.neg>, "huge": <$.value.huge>}'
            }
        },
        lambda data: data,
    ),
    "udf": ({"udf": {"source": UDF}}, lambda data: data),
}


@pytest.mark.parametrize("transform", TRANSFORMS)
def test_wide_integers_reach_the_function_unchanged(
    kafka_bootstrap: str, make_topic: Callable[..., str], transform: str
) -> None:
    topic = make_topic()
    produce(kafka_bootstrap, topic, RECORDS)
    spec, payload = TRANSFORMS[transform]
    with ThreadedFunctionServer() as function:  # it parses bodies with exact integers
        manifest = connector_manifest(
            f"wide-{transform}",
            kafka_bootstrap,
            topic,
            function.url,
            filter={"pattern": {"value": {"id": [{"numeric": [">", TWO_64]}, 7]}}},
            window={"maxMessages": 10, "maxInterval": "100ms"},
            **({"transform": spec} if spec else {}),
        )
        with RuntimeThread(manifest) as runtime:
            wait_for(lambda: function.event_count >= 1, 30, "the wanted record")
            wait_for(
                lambda: runtime.runtime.metrics.filtered.value >= 2,
                30,
                "the two others filtered",
            )
        received = [payload(event["data"]) for event in function.events()]
    expected = {**WANTED, "next": TWO_64 + 2} if transform == "udf" else WANTED
    assert received == [expected]
    assert all(type(number) is int for number in received[0].values())


def test_pass_through_keeps_wide_integers(
    kafka_bootstrap: str, make_topic: Callable[..., str]
) -> None:
    topic = make_topic()
    produce(kafka_bootstrap, topic, RECORDS[:1])
    with ThreadedFunctionServer() as function:
        manifest = connector_manifest("wide-pass", kafka_bootstrap, topic, function.url)
        with RuntimeThread(manifest):
            wait_for(lambda: function.event_count >= 1, 30, "the record")
        assert [event["data"]["value"] for event in function.events()] == [WANTED]


# The exact re-read is the standard library's, whose depth is bounded by the interpreter's
# recursion limit: `sluice run` keeps Python's default (1,000), while a process that raised
# it (the operator does, and with it this test session) reads deeper documents exactly.
DEFAULT_RECURSION_LIMIT = 1_000
RAISED_RECURSION_LIMIT = 50_000


@pytest.fixture
def recursion_limit(request: pytest.FixtureRequest) -> Iterator[int]:
    before = sys.getrecursionlimit()
    sys.setrecursionlimit(request.param)
    try:
        yield request.param
    finally:
        sys.setrecursionlimit(before)


@pytest.mark.parametrize(
    "recursion_limit", [DEFAULT_RECURSION_LIMIT, RAISED_RECURSION_LIMIT], indirect=True
)
def test_a_wide_integer_too_deep_to_read_exactly_fails_its_record_instead_of_changing(
    kafka_bootstrap: str, make_topic: Callable[..., str], recursion_limit: int
) -> None:
    """Nested near orjson's limit, a document either is read again exactly (a raised
    recursion limit) or goes to the dead-letter queue as sent (Python's default): never to
    the function with a rounded number."""
    topic, dlq = make_topic(), make_topic(prefix="dlq")
    wide = 123456789012345678901234567890
    deep = b'{"id": %d, "deep": ' % wide + b"[" * 1000 + b"]" * 1000 + b"}"
    produce(kafka_bootstrap, topic, [(b"deep", deep), (b"plain", RECORDS[2][1])])
    with ThreadedFunctionServer() as function:
        manifest = connector_manifest(
            "wide-deep",
            kafka_bootstrap,
            topic,
            function.url,
            transform={"jsonPath": "$.value.id"},
            window={"maxMessages": 10, "maxInterval": "100ms"},
            delivery={"errorTolerance": "all", "deadLetter": {"kafka": {"topic": dlq}}},
        )
        with RuntimeThread(manifest) as runtime:
            wait_for(
                lambda: any(event["data"] == 1 for event in function.events()),
                30,
                "the plain record",
            )
            group = runtime.connector.consumer_group
            wait_for(
                lambda: committed(kafka_bootstrap, group, topic, 1) == {0: 2},
                30,
                "both records committed",
            )
        delivered = [event["data"] for event in function.events()]
    if recursion_limit == DEFAULT_RECURSION_LIMIT:
        assert delivered == [1]
        [dead] = read_all(kafka_bootstrap, dlq, 1)
        assert dead.value() == deep
        headers = {name: value.decode() for name, value in dead.headers()}
        assert "beyond 64 bits exactly" in headers["sluice.error.reason"], headers
    else:
        assert delivered == [wide, 1]
        assert type(delivered[0]) is int
