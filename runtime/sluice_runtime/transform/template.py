"""The template transform: named JSONPath variables into a JSON or a text template.

Like Alibaba EventBridge's TEMPLATE transform and AWS EventBridge input transformers:
``paths`` names JSONPath variables used as ``<name>``; ``<$.path>`` inlines a path.

If the template, with every placeholder replaced by ``null``, parses as JSON, it is a JSON
template and renders to the parsed JSON value: a placeholder standing as a value gets the
value's JSON (missing → null); a placeholder inside a string literal gets the value's text,
escaped for the string (strings raw, others as JSON, missing → empty). Otherwise it is a
text template and renders to a string, with the values' text (missing → empty).

The template is compiled once into literal chunks and encoder closures, so rendering is
one lookup and one orjson call per placeholder, a join and (JSON templates) one parse.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, Final

import orjson

from sluice_runtime.config import Template
from sluice_runtime.errors import FieldPath, as_path, format_path
from sluice_runtime.transform.errors import RecordTransformError, TransformSpecError
from sluice_runtime.transform.jsonpath import MISSING, JsonPath, Lookup, compile_jsonpath

# Names start with a letter or _ so that text such as "x<10>" is not taken for a placeholder.
_NAME: Final = r"[A-Za-z_][A-Za-z0-9_.\-]*"
_NAME_RE: Final = re.compile(_NAME)
_PLACEHOLDER: Final = re.compile(rf"<(?:(?P<path>\$[^<>]*)|(?P<name>{_NAME}))>")

Render = Callable[[Any], Any]
_Encode = Callable[[Any], bytes]
_Text = Callable[[Any], str]


def compile_template(
    spec: Template, where: str | Sequence[str | int] = "transform.template"
) -> Render:
    """Compile ``spec`` into a function from the envelope to the event data."""
    at = as_path(where)
    named: dict[str, JsonPath] = {}
    for name, expression in spec.paths.items():
        if not _NAME_RE.fullmatch(name):
            raise TransformSpecError(
                (*at, "paths", name),
                "a name must be letters, digits, _ . or - and start with a letter or _",
            )
        named[name] = compile_jsonpath(expression, (*at, "paths", name))

    text = spec.template
    literals: list[str] = []
    labels: list[str] = []
    lookups: list[Lookup] = []
    inline: dict[str, JsonPath] = {}
    position = 0
    for match in _PLACEHOLDER.finditer(text):
        literals.append(text[position : match.start()])
        position = match.end()
        expression, name = match.group("path", "name")
        if expression is not None:
            if expression not in inline:
                inline[expression] = compile_jsonpath(expression, (*at, "template"))
            path = inline[expression]
        elif name in named:
            path = named[name]
        else:
            raise TransformSpecError(
                (*at, "template"),
                f"unknown placeholder <{name}>"
                f" (define it in {format_path((*at, 'paths'))}, or write <$.path>)",
            )
        labels.append(match.group())
        lookups.append(path.lookup)
    literals.append(text[position:])

    try:
        orjson.loads("null".join(literals))
    except orjson.JSONDecodeError:
        return _text_template(literals, labels, lookups)
    in_string = _string_contexts(literals, at)
    return _json_template(literals, labels, lookups, in_string)


def _string_contexts(literals: list[str], where: FieldPath) -> list[bool]:
    """For each placeholder of a JSON template, whether it sits inside a string literal."""
    contexts: list[bool] = []
    in_string = False
    for literal in literals[:-1]:
        escaped = False
        for char in literal:
            if not in_string:
                in_string = char == '"'
            elif escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        if escaped:
            # The backslash would escape the first character of the inserted value.
            raise TransformSpecError((*where, "template"), "a placeholder follows a backslash")
        contexts.append(in_string)
    return contexts


def _json_template(
    literals: list[str], labels: list[str], lookups: list[Lookup], in_string: list[bool]
) -> Render:
    encoders = [
        _string_body(lookup, label) if quoted else _json_value(lookup, label)
        for lookup, label, quoted in zip(lookups, labels, in_string, strict=True)
    ]
    first = literals[0].encode()
    rest = tuple(zip(encoders, (s.encode() for s in literals[1:]), strict=True))
    loads = orjson.loads

    def render_json(envelope: Any) -> Any:
        parts = [first]
        append = parts.append
        for encode, literal in rest:
            append(encode(envelope))
            append(literal)
        try:
            return loads(b"".join(parts))
        except orjson.JSONDecodeError as error:  # not expected: values are encoded by orjson
            raise RecordTransformError(f"template rendered invalid JSON: {error}") from None

    return render_json


def _json_value(lookup: Lookup, label: str) -> _Encode:
    dumps = orjson.dumps

    def encode(envelope: Any) -> bytes:
        value = lookup(envelope)
        if value is MISSING:
            return b"null"
        try:
            return dumps(value)
        except TypeError as error:
            raise _unencodable(label, error) from None

    return encode


def _string_body(lookup: Lookup, label: str) -> _Encode:
    dumps = orjson.dumps

    def encode(envelope: Any) -> bytes:
        value = lookup(envelope)
        try:
            if isinstance(value, str):
                return dumps(value)[1:-1]
            if value is MISSING:
                return b""
            return dumps(dumps(value).decode())[1:-1]
        except TypeError as error:
            raise _unencodable(label, error) from None

    return encode


def _text_template(literals: list[str], labels: list[str], lookups: list[Lookup]) -> Render:
    first = literals[0]
    rest = tuple(
        zip(
            (_text(lookup, label) for lookup, label in zip(lookups, labels, strict=True)),
            literals[1:],
            strict=True,
        )
    )

    def render_text(envelope: Any) -> str:
        parts = [first]
        append = parts.append
        for text, literal in rest:
            append(text(envelope))
            append(literal)
        return "".join(parts)

    return render_text


def _text(lookup: Lookup, label: str) -> _Text:
    dumps = orjson.dumps

    def text(envelope: Any) -> str:
        value = lookup(envelope)
        if isinstance(value, str):
            return value
        if value is MISSING:
            return ""
        try:
            return dumps(value).decode()
        except TypeError as error:
            raise _unencodable(label, error) from None

    return text


def _unencodable(label: str, error: Exception) -> RecordTransformError:
    return RecordTransformError(f"template: cannot encode {label} as JSON: {error}")
