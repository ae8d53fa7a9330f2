"""keyFormat and valueFormat string and bytes need no schema registry: a Connector using
them runs, with or without a UDF (records are decoded before they reach its worker)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest

from testkit.function_server import ThreadedFunctionServer
from tests.support import RuntimeThread, connector_manifest, produce, wait_for

pytestmark = pytest.mark.integration

ECHO_UDF = """
def handle_message(event, context):
    return {"key": event["key"], "value": event["value"]}
"""


@pytest.mark.parametrize("with_udf", [False, True], ids=["no-udf", "udf"])
def test_text_values_and_byte_keys_arrive_decoded_without_a_registry(
    kafka_bootstrap: str, make_topic: Callable[..., str], with_udf: bool
) -> None:
    topic = make_topic()
    records = [(b"\x00\xffk%d" % i, f'{{"i": {i}}} as text') for i in range(5)]
    produce(kafka_bootstrap, topic, records)
    spec: dict[str, Any] = {"window": {"maxMessages": 5, "maxInterval": "100ms"}}
    if with_udf:
        spec["transform"] = {"udf": {"source": ECHO_UDF}}
    with ThreadedFunctionServer() as function:
        manifest = connector_manifest("text-formats", kafka_bootstrap, topic, function.url, **spec)
        manifest["spec"]["source"]["kafka"].update(valueFormat="string", keyFormat="bytes")
        with RuntimeThread(manifest):
            wait_for(lambda: function.event_count >= 5, 30, "the five records")
    data = [event["data"] for event in function.events()]
    assert [(d["key"], d["value"]) for d in data] == [
        (base64.b64encode(key).decode(), value) for key, value in records
    ]
