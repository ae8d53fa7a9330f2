from __future__ import annotations

import logging
import textwrap
from pathlib import Path
from typing import Any

import pytest

from sluice_runtime.config import Transform, Udf
from sluice_runtime.transform import (
    RecordTransformError,
    TransformContext,
    TransformSpecError,
    compile_transform,
    compile_udf,
    load_udf_source,
)

CONTEXT = TransformContext(connector="views", namespace="ads")


def envelope(value: Any = None) -> dict[str, Any]:
    return {
        "topic": "ad-views",
        "partition": 3,
        "offset": 1042,
        "timestamp": 1732700000000,
        "key": "user-17",
        "headers": {"h": "1"},
        "value": {"amount": 12.5, "items": [1, 2, 3]} if value is None else value,
    }


def udf(source: str, function: str = "handle_message") -> Any:
    return compile_udf(textwrap.dedent(source), function, CONTEXT)


def test_returns_a_new_event() -> None:
    run = udf("""
        def handle_message(event, context):
            return {"amount": event["value"]["amount"] * 2, "key": event["key"]}
    """)
    assert run(envelope()) == [{"amount": 25.0, "key": "user-17"}]


def test_list_fans_out_and_none_drops() -> None:
    run = udf("""
        def handle_message(event, context):
            items = event["value"]["items"]
            if not items:
                return None
            return [{"item": i} if i != 2 else None for i in items]
    """)
    assert run(envelope()) == [{"item": 1}, {"item": 3}]
    assert run(envelope({"amount": 0, "items": []})) == []


def test_scalar_results_are_events() -> None:
    assert udf("def handle_message(e, c):\n    return 'text'\n")(envelope()) == ["text"]
    assert udf("def handle_message(e, c):\n    return 0\n")(envelope()) == [0]


def test_context_names_connector_and_record() -> None:
    run = udf("""
        def handle_message(event, context):
            return {
                "connector": context.connector,
                "namespace": context.namespace,
                "at": [context.topic, context.partition, context.offset],
                "logger": context.logger.name,
            }
    """)
    assert run(envelope()) == [
        {
            "connector": "views",
            "namespace": "ads",
            "at": ["ad-views", 3, 1042],
            "logger": "sluice.udf.ads.views",
        }
    ]


def test_udf_can_log(caplog: pytest.LogCaptureFixture) -> None:
    run = udf("""
        def handle_message(event, context):
            context.logger.warning("odd amount %s", event["value"]["amount"])
            return event
    """)
    with caplog.at_level(logging.WARNING, logger="sluice.udf.ads.views"):
        run(envelope())
    assert caplog.messages == ["odd amount 12.5"]


def test_mutating_the_event_does_not_leak() -> None:
    run = udf("""
        def handle_message(event, context):
            event["value"]["items"].append(99)
            event["headers"].clear()
            event["extra"] = True
            return event
    """)
    record = envelope()
    result = run(record)
    assert result[0]["value"]["items"] == [1, 2, 3, 99]
    assert record == envelope()
    # And the next call sees the record as it was.
    assert run(record)[0]["value"]["items"] == [1, 2, 3, 99]


def test_results_are_detached_from_udf_state() -> None:
    run = udf("""
        OUT = {"n": 0}
        def handle_message(event, context):
            OUT["n"] += 1
            return OUT
    """)
    first = run(envelope())
    second = run(envelope())
    assert (first, second) == ([{"n": 1}], [{"n": 2}])


def test_module_state_helpers_and_dataclasses_work() -> None:
    run = udf("""
        from __future__ import annotations
        import dataclasses

        @dataclasses.dataclass
        class View:
            amount: float
            doubled: float = 0.0

        def double(x):
            return x * 2

        def handle_message(event, context):
            amount = event["value"]["amount"]
            return dataclasses.asdict(View(amount, double(amount)))
    """)
    assert run(envelope()) == [{"amount": 12.5, "doubled": 25.0}]


def test_exception_is_a_record_error_with_a_readable_reason() -> None:
    run = udf("""
        def handle_message(event, context):
            return 1 / 0
    """)
    with pytest.raises(RecordTransformError) as caught:
        run(envelope())
    assert caught.value.reason == "ZeroDivisionError: division by zero in handle_message (line 3)"


def test_reason_names_the_innermost_udf_function_on_one_line() -> None:
    run = udf("""
        def helper(value):
            raise ValueError("bad\\nvalue")

        def handle_message(event, context):
            return helper(event)
    """)
    with pytest.raises(RecordTransformError) as caught:
        run(envelope())
    assert caught.value.reason == "ValueError: bad value in helper (line 3)"


def test_key_error_reason() -> None:
    run = udf("def handle_message(event, context):\n    return event['value']['nope']\n")
    with pytest.raises(RecordTransformError, match="KeyError: 'nope' in handle_message"):
        run(envelope())


def test_exit_in_a_udf_is_a_record_error() -> None:
    run = udf("import sys\ndef handle_message(event, context):\n    sys.exit(3)\n")
    with pytest.raises(RecordTransformError, match="SystemExit: 3"):
        run(envelope())


def test_unserialisable_result_is_a_record_error() -> None:
    run = udf("def handle_message(event, context):\n    return {'s': {1, 2}}\n")
    with pytest.raises(RecordTransformError) as caught:
        run(envelope())
    assert "handle_message returned a value that is not JSON-serialisable" in caught.value.reason
    assert "set" in caught.value.reason


def test_non_string_keys_are_converted() -> None:
    run = udf("def handle_message(event, context):\n    return {1: 'a'}\n")
    assert run(envelope()) == [{"1": "a"}]


def test_syntax_error_names_the_line() -> None:
    with pytest.raises(TransformSpecError) as caught:
        udf("""
            def handle_message(event, context):
                return (
        """)
    assert str(caught.value).startswith("transform.udf: line 3: SyntaxError: ")


def test_indentation_error_names_the_line() -> None:
    with pytest.raises(TransformSpecError, match=r"^transform.udf: line 2: IndentationError"):
        udf("def handle_message(event, context):\nreturn event\n")


def test_missing_function() -> None:
    with pytest.raises(TransformSpecError, match=r"^transform.udf: no function handle_message$"):
        udf("def handle(event, context):\n    return event\n")


def test_custom_function_name() -> None:
    run = udf("def enrich(event, context):\n    return 1\n", function="enrich")
    assert run(envelope()) == [1]


def test_function_not_callable() -> None:
    with pytest.raises(TransformSpecError, match="handle_message is not callable"):
        udf("handle_message = 3\n")


def test_function_with_wrong_arity() -> None:
    with pytest.raises(TransformSpecError, match=r"must accept two arguments \(event, context\)"):
        udf("def handle_message(event):\n    return event\n")


def test_exception_at_import() -> None:
    with pytest.raises(TransformSpecError) as caught:
        udf("import json\nCONFIG = json.loads('{')\n")
    message = str(caught.value)
    assert message.startswith("transform.udf: line 2: exception at import: JSONDecodeError")


def test_inline_source_from_the_spec() -> None:
    spec = Transform(udf=Udf(source="def handle_message(e, c):\n    return e['key']\n"))
    assert compile_transform(spec, CONTEXT)(envelope()) == ["user-17"]


def test_caller_source_wins_over_the_spec() -> None:
    spec = Transform(udf=Udf(file="/nonexistent/udf.py"))
    run = compile_transform(spec, CONTEXT, "def handle_message(e, c):\n    return None\n")
    assert run(envelope()) == []


def test_file_source(tmp_path: Path) -> None:
    (tmp_path / "udf.py").write_text("def handle_message(e, c):\n    return e['offset']\n")
    spec = Transform(udf=Udf(file=str(tmp_path / "udf.py")))
    assert compile_transform(spec, CONTEXT)(envelope()) == [1042]
    assert load_udf_source(Udf(file="udf.py"), tmp_path).startswith("def handle_message")


def test_unreadable_file_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.py"
    with pytest.raises(TransformSpecError) as caught:
        compile_transform(Transform(udf=Udf(file=str(missing))), CONTEXT)
    assert str(caught.value).startswith(f"transform.udf.file: cannot read {missing}")


def test_config_map_needs_a_file_in_standalone_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLUICE_UDF_FILE", raising=False)
    spec = Udf.model_validate({"configMapRef": {"name": "udfs", "key": "views.py"}})
    with pytest.raises(TransformSpecError) as caught:
        load_udf_source(spec)
    message = str(caught.value)
    assert message.startswith("transform.udf.configMapRef: ")
    assert "udfs/views.py" in message
    assert "standalone" in message
    assert "transform.udf.file" in message


def test_config_map_read_from_the_mounted_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mounted = tmp_path / "handler.py"
    mounted.write_text("def handle_message(e, c):\n    return 'mounted'\n")
    monkeypatch.setenv("SLUICE_UDF_FILE", str(mounted))
    spec = Transform.model_validate({"udf": {"configMapRef": {"name": "u", "key": "k"}}})
    assert compile_transform(spec, CONTEXT)(envelope()) == ["mounted"]
