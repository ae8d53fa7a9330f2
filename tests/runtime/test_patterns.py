"""EventBridge event patterns: one group of tests per operator, then structure and errors."""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any

import pytest

from bench.patterns import bench_patterns
from sluice_runtime.patterns import PatternError, compile_pattern, compile_patterns


def envelope(value: Any = None, **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "topic": "ad-views",
        "partition": 3,
        "offset": 1042,
        "timestamp": 1732700000000,
        "key": "user-17",
        "headers": {"traceparent": "00-abc-01"},
        "value": value,
    }
    record.update(fields)
    return record


def matches(pattern: dict[str, Any], event: Any) -> bool:
    result = compile_pattern(pattern)(event)
    assert isinstance(result, bool)
    return result


def value_matches(leaf: list[Any], value: Any) -> bool:
    """A leaf pattern on ``value.x`` against ``value: {"x": <value>}``."""
    return matches({"value": {"x": leaf}}, envelope({"x": value}))


# --- exact values -------------------------------------------------------------------------


def test_exact_strings_are_case_sensitive_and_or_within_the_array() -> None:
    assert value_matches(["US", "CA"], "CA")
    assert not value_matches(["US", "CA"], "us")
    assert not value_matches(["US"], "US ")


@pytest.mark.parametrize("pattern_number", [300, 300.0])
@pytest.mark.parametrize("event_number", [300, 300.0])
def test_exact_numbers_compare_numerically(pattern_number: float, event_number: float) -> None:
    assert value_matches([pattern_number], event_number)


@pytest.mark.parametrize("pattern_text", ["300", "300.0", "3e2", "3.0E+2"])
@pytest.mark.parametrize("event_text", ["300", "300.0", "3e2", "30e1"])
def test_exact_numbers_written_differently_in_json_are_equal(
    pattern_text: str, event_text: str
) -> None:
    pattern = json.loads(f'{{"value": {{"x": [{pattern_text}]}}}}')
    assert matches(pattern, json.loads(f'{{"value": {{"x": {event_text}}}}}'))
    assert not matches(pattern, json.loads('{"value": {"x": 300.5}}'))


def test_numbers_and_strings_never_equal_each_other() -> None:
    assert not value_matches([300], "300")
    assert not value_matches(["300"], 300)


def test_booleans_never_match_numbers() -> None:
    assert value_matches([True], True)
    assert not value_matches([True], 1)
    assert not value_matches([1], True)
    assert not value_matches([0], False)
    assert not value_matches([False], 0)
    assert not value_matches([1.0], True)
    assert value_matches([False], False)
    assert not value_matches([False], True)


def test_null_and_empty_string_are_distinct_values() -> None:
    assert value_matches([None], None)
    assert value_matches([""], "")
    assert not value_matches([None], "")
    assert not value_matches([""], None)
    assert not value_matches([None], "null")
    assert not value_matches([None], 0)


def test_missing_field_matches_no_exact_value() -> None:
    assert not matches({"value": {"x": [None]}}, envelope({"y": 1}))
    assert not matches({"value": {"x": [""]}}, envelope({}))


def test_fields_are_and_ed() -> None:
    pattern = {"value": {"device": ["ios"], "country": ["US"]}}
    assert matches(pattern, envelope({"device": "ios", "country": "US"}))
    assert not matches(pattern, envelope({"device": "ios", "country": "FR"}))
    assert not matches(pattern, envelope({"device": "ios"}))


# --- prefix, suffix, equals-ignore-case, contains ------------------------------------------


def test_prefix() -> None:
    assert value_matches([{"prefix": "ios"}], "ios-17")
    assert value_matches([{"prefix": "ios"}], "ios")
    assert not value_matches([{"prefix": "ios"}], "IOS-17")
    assert not value_matches([{"prefix": "1"}], 17)
    assert value_matches([{"prefix": ""}], "")
    assert not value_matches([{"prefix": ""}], None)


def test_several_prefixes_are_or_ed() -> None:
    leaf = [{"prefix": "ios"}, {"prefix": "android"}]
    assert value_matches(leaf, "android-14")
    assert not value_matches(leaf, "web")


def test_prefix_ignoring_case() -> None:
    leaf = [{"prefix": {"equals-ignore-case": "EventB"}}]
    assert value_matches(leaf, "eventbridge")
    assert value_matches(leaf, "EVENTBRIDGE")
    assert not value_matches(leaf, "the eventbridge")


def test_suffix_and_suffix_ignoring_case() -> None:
    assert value_matches([{"suffix": ".png"}], "cat.png")
    assert not value_matches([{"suffix": ".png"}], "cat.PNG")
    assert value_matches([{"suffix": {"equals-ignore-case": ".png"}}], "cat.PNG")
    assert not value_matches([{"suffix": {"equals-ignore-case": ".png"}}], "cat.jpg")


def test_equals_ignore_case() -> None:
    assert value_matches([{"equals-ignore-case": "alice"}], "ALICE")
    assert value_matches([{"equals-ignore-case": "école"}], "ÉCOLE")
    assert not value_matches([{"equals-ignore-case": "alice"}], "alicia")
    assert not value_matches([{"equals-ignore-case": "true"}], True)


def test_contains() -> None:
    assert value_matches([{"contains": "Normal"}], "an AbNormal Normal day")
    assert not value_matches([{"contains": "Normal"}], "normal")
    assert not value_matches([{"contains": "1"}], 123)


# --- wildcard --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wildcard", "value", "expected"),
    [
        ("Simple*Service", "SimpleNotificationService", True),
        ("Simple*Service", "SimpleService", True),
        ("Simple*Service", "SimpleServiceX", False),
        ("*", "", True),
        ("*", "anything", True),
        ("a*", "abc", True),
        ("*c", "abc", True),
        ("*b*", "abc", True),
        ("a*b*c", "abbbc", True),
        ("a*b*c", "acb", False),
        ("a*a", "a", False),
        ("ab*ba", "aba", False),
        ("*/lib/*", "/usr/lib/x", True),
        ("plain", "plain", True),
        ("plain", "plainer", False),
        ("multi\nline*", "multi\nline\nend", True),
    ],
)
def test_wildcard(wildcard: str, value: str, expected: bool) -> None:
    assert value_matches([{"wildcard": wildcard}], value) is expected


def test_wildcard_escapes() -> None:
    # JSON "a\\*b" is the Python string a\*b: a literal star.
    assert value_matches([{"wildcard": "a\\*b"}], "a*b")
    assert not value_matches([{"wildcard": "a\\*b"}], "axb")
    # a\\\\b in JSON, a\\b here: a literal backslash.
    assert value_matches([{"wildcard": "a\\\\b"}], "a\\b")
    # A literal star followed by a real wildcard is not "consecutive stars".
    assert value_matches([{"wildcard": "x\\**"}], "x*yz")
    assert not value_matches([{"wildcard": "x\\**"}], "xyz")


def test_wildcard_only_matches_strings() -> None:
    assert not value_matches([{"wildcard": "*"}], 5)
    assert not value_matches([{"wildcard": "*"}], None)


# --- anything-but ----------------------------------------------------------------------------


def test_anything_but_a_string() -> None:
    leaf = [{"anything-but": "initializing"}]
    assert value_matches(leaf, "running")
    assert not value_matches(leaf, "initializing")
    # Any other leaf value qualifies, null and numbers included (but a missing field does not).
    assert value_matches(leaf, None)
    assert value_matches(leaf, 5)
    assert not matches({"value": {"x": leaf}}, envelope({}))


def test_anything_but_a_number_compares_numerically() -> None:
    leaf = [{"anything-but": 300}]
    assert not value_matches(leaf, 300.0)
    assert not value_matches(leaf, 3e2)
    assert value_matches(leaf, 301)
    assert value_matches(leaf, "300")
    assert value_matches(leaf, True)


def test_anything_but_lists() -> None:
    strings = [{"anything-but": ["stopped", "overloaded"]}]
    assert value_matches(strings, "running")
    assert not value_matches(strings, "stopped")
    assert not value_matches(strings, "overloaded")
    numbers = [{"anything-but": [100, 200, 300]}]
    assert value_matches(numbers, 150)
    assert not value_matches(numbers, 200.0)
    assert value_matches(numbers, "200")


def test_anything_but_prefix_and_suffix() -> None:
    assert value_matches([{"anything-but": {"prefix": "us-"}}], "eu-west-1")
    assert not value_matches([{"anything-but": {"prefix": "us-"}}], "us-east-1")
    assert not value_matches([{"anything-but": {"prefix": ["us-", "eu-"]}}], "eu-west-1")
    assert value_matches([{"anything-but": {"prefix": ["us-", "eu-"]}}], "ap-south-1")
    assert value_matches([{"anything-but": {"suffix": ".png"}}], "a.jpg")
    assert not value_matches([{"anything-but": {"suffix": [".png", ".jpg"]}}], "a.jpg")
    # Non-strings never start with a prefix, so they qualify.
    assert value_matches([{"anything-but": {"prefix": "us-"}}], 7)


def test_anything_but_equals_ignore_case_and_wildcard() -> None:
    ignore_case = [{"anything-but": {"equals-ignore-case": ["Stopped", "Overloaded"]}}]
    assert not value_matches(ignore_case, "STOPPED")
    assert value_matches(ignore_case, "running")
    wildcard = [{"anything-but": {"wildcard": "*/lib/*"}}]
    assert not value_matches(wildcard, "/usr/lib/x")
    assert value_matches(wildcard, "/usr/bin/x")
    several = [{"anything-but": {"wildcard": ["*.png", "*.jpg"]}}]
    assert not value_matches(several, "a.jpg")
    assert value_matches(several, "a.gif")


def test_anything_but_on_an_array_matches_when_any_element_qualifies() -> None:
    assert value_matches([{"anything-but": "a"}], ["a", "b"])
    assert not value_matches([{"anything-but": "a"}], ["a", "a"])


# --- numeric ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("numeric", "value", "expected"),
    [
        ([">", 0], 0.0001, True),
        ([">", 0], 0, False),
        ([">=", 0], 0, True),
        (["<", 10], 9.99, True),
        (["<", 10], 10, False),
        (["<=", 10], 10.0, True),
        (["=", 300], 300, True),
        (["=", 300], 300.0, True),
        (["=", 3e2], 300, True),
        (["=", 300], 300.5, False),
        ([">", 0, "<=", 5], 5, True),
        ([">", 0, "<=", 5], 0, False),
        ([">=", 0, "<", 5], 0, True),
        ([">=", 0, "<", 5], 5, False),
        ([">", -1.5, "<", 1.5], -1, True),
        ([">", 0], 10**30, True),
        (["<", 9007199254740993], 9007199254740992, True),
    ],
)
def test_numeric(numeric: list[Any], value: float, expected: bool) -> None:
    assert value_matches([{"numeric": numeric}], value) is expected


@pytest.mark.parametrize("value", ["5", True, False, None, "", [], {}])
def test_numeric_never_matches_non_numbers(value: Any) -> None:
    assert not value_matches([{"numeric": [">", -100]}], value)


def test_numeric_matches_any_number_in_an_array() -> None:
    assert value_matches([{"numeric": [">", 10]}], [1, "20", 30])
    assert not value_matches([{"numeric": [">", 10]}], [1, "20", True])


# --- cidr --------------------------------------------------------------------------------------


def test_cidr_ipv4() -> None:
    leaf = [{"cidr": "10.0.0.0/24"}]
    assert value_matches(leaf, "10.0.0.33")
    assert value_matches(leaf, "10.0.0.255")
    assert not value_matches(leaf, "10.0.1.0")
    assert not value_matches(leaf, "not an address")
    assert not value_matches(leaf, "::ffff:10.0.0.1")
    assert not value_matches(leaf, 167772161)


def test_cidr_ipv6() -> None:
    leaf = [{"cidr": "2001:db8::/32"}]
    assert value_matches(leaf, "2001:db8::1")
    assert value_matches(leaf, "2001:0db8:ffff::abcd")
    assert not value_matches(leaf, "2001:db9::1")
    assert not value_matches(leaf, "10.0.0.1")


def test_cidr_with_host_bits_set_covers_its_network() -> None:
    assert value_matches([{"cidr": "192.168.1.77/16"}], "192.168.200.1")


# --- exists ------------------------------------------------------------------------------------


def test_exists_false_matches_a_missing_field() -> None:
    pattern = {"value": {"c-count": [{"exists": False}]}}
    assert matches(pattern, envelope({"state": "running"}))
    assert not matches(pattern, envelope({"c-count": 5}))
    # A missing parent also means a missing leaf.
    assert matches({"value": {"detail": {"c-count": [{"exists": False}]}}}, envelope({}))


def test_exists_true_matches_any_leaf_value_including_null() -> None:
    pattern = {"value": {"c-count": [{"exists": True}]}}
    assert matches(pattern, envelope({"c-count": 5}))
    assert matches(pattern, envelope({"c-count": None}))
    assert matches(pattern, envelope({"c-count": ""}))
    assert not matches(pattern, envelope({"other": 1}))


def test_exists_only_sees_leaves() -> None:
    # EventBridge: exists works on leaf nodes only, not on intermediate objects.
    object_value = envelope({"c-count": {"c1": 100}})
    assert matches({"value": {"c-count": [{"exists": False}]}}, object_value)
    assert not matches({"value": {"c-count": [{"exists": True}]}}, object_value)
    # An empty array holds no leaf values.
    assert matches({"value": {"c-count": [{"exists": False}]}}, envelope({"c-count": []}))
    assert not matches({"value": {"c-count": [{"exists": True}]}}, envelope({"c-count": []}))
    assert matches({"value": {"c-count": [{"exists": True}]}}, envelope({"c-count": [[1]]}))


def test_exists_false_or_a_value() -> None:
    leaf = ["blue", {"exists": False}]
    assert matches({"value": {"x": leaf}}, envelope({}))
    assert value_matches(leaf, "blue")
    assert not value_matches(leaf, "red")


# --- arrays in events --------------------------------------------------------------------------


def test_event_arrays_match_when_any_element_does() -> None:
    assert value_matches(["b"], ["a", "b"])
    assert not value_matches(["c"], ["a", "b"])
    assert value_matches(["b"], [["a"], ["b"]])
    assert not value_matches(["a"], [])


def test_arrays_of_objects_match_one_element_at_a_time() -> None:
    event = envelope(
        {
            "employees": [
                {"firstName": "John", "lastName": "Doe"},
                {"firstName": "Anna", "lastName": "Smith"},
                {"firstName": "Peter", "lastName": "Jones"},
            ]
        }
    )
    assert matches({"value": {"employees": {"firstName": ["Anna"]}}}, event)
    assert matches({"value": {"employees": {"firstName": ["Anna"], "lastName": ["Smith"]}}}, event)
    # Fields from different array elements never combine.
    assert not matches(
        {"value": {"employees": {"firstName": ["Anna"], "lastName": ["Jones"]}}}, event
    )


def test_arrays_of_arrays_of_objects_are_flattened() -> None:
    event = envelope({"employees": [[{"firstName": "John"}], [{"firstName": "Peter"}]]})
    assert matches({"value": {"employees": {"firstName": ["Peter"]}}}, event)


def test_leaf_pattern_on_an_array_of_objects_sees_no_leaves() -> None:
    assert not value_matches(["a"], [{"x": "a"}])
    assert value_matches(["a"], [{"x": "b"}, "a"])


def test_nested_pattern_on_a_non_object_sees_no_fields() -> None:
    assert not matches({"value": {"a": ["x"]}}, envelope("a plain string"))
    assert matches({"value": {"a": [{"exists": False}]}}, envelope("a plain string"))
    assert matches({"value": {"a": [{"exists": False}]}}, envelope([1, 2]))
    assert not matches({"value": {"a": [{"exists": False}]}}, envelope([1, {"a": 2}]))


# --- $or ---------------------------------------------------------------------------------------


def test_or_at_the_top_level() -> None:
    pattern = {"$or": [{"key": ["user-17"]}, {"value": {"vip": [True]}}]}
    assert matches(pattern, envelope({}, key="user-17"))
    assert matches(pattern, envelope({"vip": True}, key="user-2"))
    assert not matches(pattern, envelope({"vip": False}, key="user-2"))


def test_or_combines_with_sibling_fields_by_and() -> None:
    pattern = {
        "value": {
            "source": ["aws.cloudwatch"],
            "$or": [{"metricName": ["CPUUtilization"]}, {"namespace": ["AWS/EC2"]}],
        }
    }
    assert matches(pattern, envelope({"source": "aws.cloudwatch", "namespace": "AWS/EC2"}))
    assert not matches(pattern, envelope({"source": "aws.ec2", "namespace": "AWS/EC2"}))
    assert not matches(pattern, envelope({"source": "aws.cloudwatch", "namespace": "AWS/ES"}))


def test_nested_or() -> None:
    pattern = {
        "value": {
            "source": ["aws.cloudwatch"],
            "$or": [
                {"metricName": ["CPUUtilization", "ReadLatency"]},
                {
                    "metricType": ["MetricType"],
                    "$or": [{"metricId": [1234]}, {"spaceId": [1000]}],
                },
                {"scope": ["Service"]},
            ],
        }
    }
    base = {"source": "aws.cloudwatch", "metricType": "MetricType"}
    assert matches(pattern, envelope({**base, "spaceId": 1000}))
    assert matches(pattern, envelope({**base, "metricId": 1234.0}))
    assert not matches(pattern, envelope({**base, "spaceId": 1001}))
    assert matches(pattern, envelope({"source": "aws.cloudwatch", "scope": "Service"}))


def test_two_parallel_ors_must_both_hold() -> None:
    pattern = {
        "$or": [{"key": ["a"]}, {"key": ["b"]}],
        "value": {"$or": [{"x": [1]}, {"y": [2]}]},
    }
    assert matches(pattern, envelope({"y": 2}, key="b"))
    assert not matches(pattern, envelope({"y": 3}, key="b"))
    assert not matches(pattern, envelope({"y": 2}, key="c"))


def test_or_inside_an_array_of_objects_stays_within_one_element() -> None:
    pattern = {"value": {"items": {"kind": ["book"], "$or": [{"price": [1]}, {"sale": [True]}]}}}
    assert not matches(
        pattern, envelope({"items": [{"kind": "book", "price": 2}, {"kind": "pen", "sale": True}]})
    )
    assert matches(pattern, envelope({"items": [{"kind": "pen"}, {"kind": "book", "sale": True}]}))


# --- the record envelope -----------------------------------------------------------------------


def test_patterns_on_key_headers_and_metadata() -> None:
    event = envelope({"a": 1}, key="user-17", headers={"traceparent": "00-abc-01", "tenant": "x"})
    assert matches({"key": [{"prefix": "user-"}]}, event)
    assert matches({"headers": {"tenant": ["x"]}}, event)
    assert not matches({"headers": {"tenant": ["y"]}}, event)
    assert matches({"headers": {"missing": [{"exists": False}]}}, event)
    assert matches({"topic": ["ad-views"], "partition": [{"numeric": ["<", 4]}]}, event)
    assert not matches({"key": [{"prefix": "user-"}]}, envelope({}, key=None))


def test_patterns_on_a_non_json_string_value() -> None:
    event = envelope("plain text, not JSON")
    assert matches({"value": [{"prefix": "plain"}]}, event)
    assert matches({"value": [{"contains": "not JSON"}]}, event)
    assert matches({"value": [{"wildcard": "*text*"}]}, event)
    assert not matches({"value": ["plain"]}, event)


def test_patterns_on_a_number_value() -> None:
    assert matches({"value": [{"numeric": [">", 1]}]}, envelope(2))
    assert matches({"value": [2.0]}, envelope(2))


def test_unusual_python_types_behave_as_their_json_kind() -> None:
    class Text(str):
        pass

    event = OrderedDict(value=OrderedDict(x=Text("ios-17"), items=("a", "b")))
    assert matches({"value": {"x": [{"prefix": "ios"}], "items": ["b"]}}, event)
    assert not matches({"value": {"x": [{"prefix": "and"}]}}, event)
    assert matches({"value": {"opaque": [{"exists": False}]}}, {"value": {"opaque": object()}})


def test_non_object_events() -> None:
    assert not matches({"key": ["a"]}, "just a string")
    assert matches({"key": [{"exists": False}]}, None)
    assert matches({"key": ["a"]}, [{"key": "b"}, {"key": "a"}])


# --- several patterns --------------------------------------------------------------------------


def test_compile_patterns_is_any_of() -> None:
    matcher = compile_patterns([{"key": ["a"]}, {"value": {"n": [{"numeric": [">", 5]}]}}])
    assert matcher(envelope({"n": 1}, key="a"))
    assert matcher(envelope({"n": 6}, key="b"))
    assert not matcher(envelope({"n": 1}, key="b"))
    single = compile_patterns([{"key": ["a"]}])
    assert single(envelope({}, key="a"))


# --- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "path", "message"),
    [
        ({"value": "ios"}, "value", "filter.pattern.value: must be an array"),
        ({"value": {"amount": 5}}, "value.amount", "filter.pattern.value.amount: must be"),
        ({"value": {"x": []}}, "value.x", "filter.pattern.value.x: must list at least one"),
        ({"value": {}}, "value", "filter.pattern.value: must have at least one field"),
        ({"value": {"x": [["a"]]}}, "value.x[0]", "value.x[0]: must not be a nested array"),
        ({"value": {"x": [float("nan")]}}, "value.x[0]", "must be a finite number"),
        (
            {"value": {"x": ["a", {"prefx": "a"}]}},
            "value.x[1].prefx",
            'filter.pattern.value.x[1]: has unknown operator "prefx"',
        ),
        (
            {"value": {"x": [{"prefix": "a", "suffix": "b"}]}},
            "value.x[0]",
            "value.x[0]: must hold exactly one operator",
        ),
        (
            {"value": {"amount": [{"numeric": [">", 5, "<", 1]}]}},
            "value.amount[0].numeric",
            "filter.pattern.value.amount[0]: numeric range is empty",
        ),
        (
            {"value": {"amount": [{"numeric": [">", 5, "<", 5]}]}},
            "value.amount[0].numeric",
            "numeric range is empty",
        ),
        (
            {"value": {"amount": [{"numeric": ["!=", 5]}]}},
            "value.amount[0].numeric",
            'value.amount[0]: numeric has unknown comparison "!="',
        ),
        (
            {"value": {"amount": [{"numeric": ["<", 5, ">", 1]}]}},
            "value.amount[0].numeric",
            "numeric range needs a lower bound",
        ),
        (
            {"value": {"amount": [{"numeric": [">", "5"]}]}},
            "value.amount[0].numeric",
            'numeric needs a finite number after ">"',
        ),
        (
            {"value": {"amount": [{"numeric": [">", True]}]}},
            "value.amount[0].numeric",
            "numeric needs a finite number",
        ),
        (
            {"value": {"amount": [{"numeric": [">", 0, "<", 5, "<", 6]}]}},
            "value.amount[0].numeric",
            "numeric needs an array of one or two comparisons",
        ),
        ({"value": {"x": [{"numeric": 5}]}}, "value.x[0].numeric", "numeric needs an array"),
        ({"ip": [{"cidr": "10.0.0.0/33"}]}, "ip[0].cidr", "filter.pattern.ip[0]: cidr needs"),
        ({"ip": [{"cidr": "10.0.0.1"}]}, "ip[0].cidr", "cidr needs an IPv4 or IPv6 network"),
        ({"ip": [{"cidr": "nonsense/8"}]}, "ip[0].cidr", "cidr needs"),
        ({"ip": [{"cidr": 10}]}, "ip[0].cidr", "cidr needs"),
        ({"s": [{"wildcard": "a**b"}]}, "s[0].wildcard", 'wildcard "a**b" must not contain'),
        ({"s": [{"wildcard": "a\\b"}]}, "s[0].wildcard", "may escape only"),
        ({"s": [{"wildcard": "trailing\\"}]}, "s[0].wildcard", "may escape only"),
        ({"s": [{"wildcard": 5}]}, "s[0].wildcard", "wildcard needs a string"),
        ({"s": [{"prefix": 5}]}, "s[0].prefix", "filter.pattern.s[0]: prefix needs a string"),
        ({"s": [{"suffix": {"equals": "x"}}]}, "s[0].suffix", "suffix needs a string or"),
        ({"s": [{"equals-ignore-case": None}]}, "s[0].equals-ignore-case", "needs a string"),
        ({"s": [{"contains": ["a"]}]}, "s[0].contains", "contains needs a string"),
        ({"s": [{"exists": "yes"}]}, "s[0].exists", "exists needs true or false"),
        ({"s": [{"anything-but": [1, "a"]}]}, "s[0].anything-but", "anything-but needs"),
        ({"s": [{"anything-but": []}]}, "s[0].anything-but", "anything-but needs"),
        ({"s": [{"anything-but": None}]}, "s[0].anything-but", "anything-but needs"),
        ({"s": [{"anything-but": True}]}, "s[0].anything-but", "anything-but needs"),
        ({"s": [{"anything-but": {"numeric": [">", 1]}}]}, "s[0].anything-but", "object needs"),
        (
            {"s": [{"anything-but": {"prefix": ""}}]},
            "s[0].anything-but.prefix",
            "s[0]: anything-but.prefix needs non-empty strings",
        ),
        (
            {"s": [{"anything-but": {"suffix": [1]}}]},
            "s[0].anything-but.suffix",
            "anything-but.suffix needs a string or a non-empty array of strings",
        ),
        (
            {"s": [{"anything-but": {"wildcard": "**"}}]},
            "s[0].anything-but.wildcard",
            "anything-but.wildcard",
        ),
        ({"$or": [{"a": ["x"]}]}, "$or", "filter.pattern: $or needs an array of at least 2"),
        ({"v": {"$or": {"a": ["x"]}}}, "v.$or", "filter.pattern.v: $or needs"),
        ({"v": {"$or": [{"a": ["x"]}, "b"]}}, "v.$or", "$or needs"),
        (
            {"v": {"$or": [{"a": ["x"]}, {"b": [{"numeric": ["<"]}]}]}},
            "v.$or[1].b[0].numeric",
            "filter.pattern.v.$or[1].b[0]: numeric needs",
        ),
        ({}, "", "filter.pattern: must have at least one field"),
    ],
)
def test_invalid_patterns_name_the_path_and_operator(
    pattern: dict[str, Any], path: str, message: str
) -> None:
    with pytest.raises(PatternError) as caught:
        compile_pattern(pattern)
    assert caught.value.pattern_path == path
    assert message in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_error_message_starts_with_where_and_path() -> None:
    with pytest.raises(PatternError) as caught:
        compile_pattern({"value": {"amount": [{"numeric": [">", 5, "<", 1]}]}})
    assert str(caught.value).startswith("filter.pattern.value.amount[0]: numeric ")
    assert caught.value.pattern_path == "value.amount[0].numeric"
    with pytest.raises(PatternError, match=r"^spec\.filter\.pattern\.key\[0\]: prefix "):
        compile_pattern({"key": [{"prefix": 1}]}, where="spec.filter.pattern")


def test_a_pattern_must_be_an_object() -> None:
    with pytest.raises(PatternError, match="must be a JSON object"):
        compile_pattern(["a"])  # type: ignore[arg-type]


def test_compile_patterns_validation() -> None:
    with pytest.raises(PatternError, match=r"^filter\.patterns: needs a non-empty array"):
        compile_patterns([])
    with pytest.raises(PatternError) as caught:
        compile_patterns([{"key": ["a"]}, {"key": [{"exists": 1}]}])
    assert str(caught.value).startswith("filter.patterns[1].key[0]: exists needs true or false")
    assert caught.value.pattern_path == "[1].key[0].exists"


def test_bench_reports_rates_for_matching_and_non_matching_events() -> None:
    figures = bench_patterns(0.02)
    assert set(figures) == {"match_per_s", "no_match_per_s"}
    assert all(rate > 0 for rate in figures.values())
