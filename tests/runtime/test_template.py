from __future__ import annotations

from typing import Any

import pytest

from sluice_runtime.config import Template, Transform
from sluice_runtime.transform import (
    RecordTransformError,
    TransformContext,
    TransformSpecError,
    compile_template,
    compile_transform,
)

ENVELOPE: dict[str, Any] = {
    "topic": "ad-views",
    "partition": 3,
    "offset": 1042,
    "timestamp": 1732700000000,
    "key": "user-17",
    "headers": {},
    "value": {
        "uid": 17,
        "name": 'Ann "the" Admin\nline two\\',
        "device": {"os": "ios", "version": 17},
        "tags": ["a", "b"],
        "nothing": None,
    },
}

PATHS = {
    "uid": "$.value.uid",
    "name": "$.value.name",
    "device": "$.value.device",
    "tags": "$.value.tags",
    "nothing": "$.value.nothing",
    "missing": "$.value.missing",
    "at": "$.timestamp",
}


def render(template: str, envelope: dict[str, Any] = ENVELOPE) -> Any:
    return compile_template(Template(paths=PATHS, template=template))(envelope)


def test_json_template_inserts_values_as_json() -> None:
    assert render('{"user": <uid>, "seenAt": <at>, "device": <device>, "tags": <tags>}') == {
        "user": 17,
        "seenAt": 1732700000000,
        "device": {"os": "ios", "version": 17},
        "tags": ["a", "b"],
    }


def test_json_template_escapes_strings_inserted_as_values() -> None:
    assert render('{"name": <name>}') == {"name": 'Ann "the" Admin\nline two\\'}


def test_json_template_escapes_text_inside_string_literals() -> None:
    result = render('{"greeting": "hello <name>!", "summary": "<uid> on <device>"}')
    assert result == {
        "greeting": 'hello Ann "the" Admin\nline two\\!',
        "summary": '17 on {"os":"ios","version":17}',
    }


def test_json_template_missing_is_null_as_value_and_empty_in_strings() -> None:
    result = render('{"m": <missing>, "n": <nothing>, "s": "[<missing>]", "t": "[<nothing>]"}')
    assert result == {"m": None, "n": None, "s": "[]", "t": "[null]"}


def test_placeholders_in_keys_and_arrays() -> None:
    assert render('{"<uid>": [<uid>, "<uid>", <missing>]}') == {"17": [17, "17", None]}


def test_a_lone_placeholder_is_the_value_itself() -> None:
    assert render("<device>") == {"os": "ios", "version": 17}
    assert render(" <missing> ") is None


def test_inline_paths() -> None:
    result = render('{"os": <$.value.device.os>, "first": "tag <$.value.tags[0]>"}')
    assert result == {"os": "ios", "first": "tag a"}


def test_escaped_quotes_in_the_template_keep_string_context() -> None:
    assert render('{"q": "say \\"<uid>\\"", "v": <uid>}') == {"q": 'say "17"', "v": 17}


def test_constant_json_template_renders_fresh_values() -> None:
    transform = compile_template(Template(template='{"fixed": [1, 2]}'))
    first = transform(ENVELOPE)
    first["fixed"].append(3)
    assert transform(ENVELOPE) == {"fixed": [1, 2]}


def test_text_template_inserts_text() -> None:
    result = render("<name> (<uid>) uses <device>, tags <tags>")
    name = 'Ann "the" Admin\nline two\\'
    assert result == name + ' (17) uses {"os":"ios","version":17}, tags ["a","b"]'


def test_text_template_missing_is_empty_and_null_is_null() -> None:
    assert render("[<missing>] [<nothing>]") == "[] [null]"


def test_text_that_is_not_a_placeholder_is_kept() -> None:
    assert render("a < b, 3<4>2, </p> <uid>") == "a < b, 3<4>2, </p> 17"


def test_invalid_json_becomes_a_text_template() -> None:
    # "<uid> <uid>" with nulls is "null null": not JSON, so it renders text.
    assert render("<uid> <uid>") == "17 17"
    assert render('{"a": <uid>,}') == '{"a": 17,}'


def test_unknown_placeholder_is_a_spec_error() -> None:
    with pytest.raises(TransformSpecError, match=r"^transform.template.template: .*<uidd>"):
        render('{"user": <uidd>}')


def test_invalid_named_path_names_the_field() -> None:
    with pytest.raises(
        TransformSpecError, match=r"^transform.template.paths.uid: invalid JSONPath '\$.\['"
    ):
        compile_template(Template(paths={"uid": "$.["}, template="<uid>"))


def test_invalid_inline_path_names_the_field() -> None:
    with pytest.raises(TransformSpecError, match=r"^transform.template.template: unsupported"):
        compile_template(Template(template="<$..id>"))


def test_path_names_must_be_usable_as_placeholders() -> None:
    with pytest.raises(TransformSpecError, match=r"^transform.template.paths.a b: "):
        compile_template(Template(paths={"a b": "$.x"}, template="x"))


def test_placeholder_after_a_backslash_is_a_spec_error() -> None:
    with pytest.raises(TransformSpecError, match="follows a backslash"):
        render('{"a": "x\\<uid>"}')


def test_unencodable_value_is_a_record_error() -> None:
    envelope = {**ENVELOPE, "value": {"uid": 2**70}}
    with pytest.raises(RecordTransformError) as caught:
        render('{"user": <uid>}', envelope)
    assert "<uid>" in caught.value.reason


def test_compile_transform_wraps_template_and_json_path() -> None:
    context = TransformContext(connector="c")
    template = compile_transform(
        Transform(template=Template(paths={"u": "$.value.uid"}, template='{"u": <u>}')), context
    )
    assert template(ENVELOPE) == [{"u": 17}]
    json_path = compile_transform(Transform(json_path="$.value.device"), context)
    assert json_path(ENVELOPE) == [{"os": "ios", "version": 17}]
    assert compile_transform(Transform(json_path="$.value.nope"), context)(ENVELOPE) == [None]
    assert compile_transform(Transform(json_path="$.value.tags[*]"), context)(ENVELOPE) == [
        ["a", "b"]
    ]


def test_no_transform_delivers_the_envelope() -> None:
    assert compile_transform(None, TransformContext(connector="c"))(ENVELOPE) == [ENVELOPE]


def test_bench_reports_rates() -> None:
    from bench.transforms import bench_transforms

    rates = bench_transforms(0.01)
    assert set(rates) >= {"template", "json_path"}
    assert all(rate > 0 for rate in rates.values())
