"""A Connector with a filter and a template, run standalone against the real broker,
delivers exactly the matching records, transformed."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from testkit.function_server import ThreadedFunctionServer
from tests.support import RuntimeThread, connector_manifest, produce, wait_for

pytestmark = pytest.mark.integration


def test_only_matching_records_arrive_in_the_template_shape(
    kafka_bootstrap: str, make_topic: Callable[..., str]
) -> None:
    topic = make_topic(partitions=2)
    views = [
        ("u1", '{"device": "ios-17", "amount": 12.5, "user": {"id": 1, "name": "A \\"Q\\""}}'),
        ("u2", '{"device": "android-14", "amount": 3, "user": {"id": 2}}'),
        ("u3", '{"device": "ios-16", "amount": 0, "user": {"id": 3}}'),
        ("u4", '{"device": "ios-15", "amount": 7, "user": {"id": 4}}'),
        ("u5", "not json at all"),
        ("u6", '{"device": "ios-18", "amount": "12", "user": {"id": 6}}'),
    ]
    produce(kafka_bootstrap, topic, views)
    with ThreadedFunctionServer() as function:
        manifest = connector_manifest(
            "views",
            kafka_bootstrap,
            topic,
            function.url,
            filter={
                "pattern": {
                    "value": {"device": [{"prefix": "ios"}], "amount": [{"numeric": [">", 0]}]}
                }
            },
            transform={
                "template": {
                    "paths": {"uid": "$.value.user.id", "who": "$.value.user.name"},
                    "template": '{"user": <uid>, "name": <who>, "key": <$.key>}',
                }
            },
            window={"maxMessages": 10, "maxInterval": "100ms"},
        )
        with RuntimeThread(manifest) as runtime:
            wait_for(lambda: function.event_count >= 2, 30, "the two matching records")
            wait_for(
                lambda: runtime.runtime.metrics.filtered.value >= 4,
                30,
                "the four others filtered",
            )
        data = sorted((e["data"] for e in function.events()), key=lambda d: d["user"])
    assert data == [
        {"user": 1, "name": 'A "Q"', "key": "u1"},
        {"user": 4, "name": None, "key": "u4"},
    ]
