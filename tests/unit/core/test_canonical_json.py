"""Canonical JSON (spec: `appendices.md` § Canonical JSON, its Examples, and the
room version fragments `v1-canonical-json.md` / `v6-canonical-json.md`)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from matrix_conduit.core.canonical_json import (
    MAX_CANONICAL_INT,
    MIN_CANONICAL_INT,
    check_canonical_json,
    decode_json,
    encode_canonical_json,
)
from matrix_conduit.core.errors import CanonicalJsonError

# Every "Given ... the following canonical JSON should be produced" pair of the appendix.
SPEC_EXAMPLES = [
    ("{}", "{}"),
    ('{"one": 1, "two": "Two"}', '{"one":1,"two":"Two"}'),
    ('{"b": "2", "a": "1"}', '{"a":"1","b":"2"}'),
    ('{"b":"2","a":"1"}', '{"a":"1","b":"2"}'),
    (
        """{
            "auth": {
                "success": true,
                "mxid": "@john.doe:example.com",
                "profile": {
                    "display_name": "John Doe",
                    "three_pids": [
                        {"medium": "email", "address": "john.doe@example.org"},
                        {"medium": "msisdn", "address": "123456789"}
                    ]
                }
            }
        }""",
        '{"auth":{"mxid":"@john.doe:example.com","profile":{"display_name":"John Doe",'
        '"three_pids":[{"address":"john.doe@example.org","medium":"email"},'
        '{"address":"123456789","medium":"msisdn"}]},"success":true}}',
    ),
    ('{"a": "日本語"}', '{"a":"日本語"}'),
    ('{"本": 2, "日": 1}', '{"日":1,"本":2}'),
    ('{"a": "\\u65E5"}', '{"a":"日"}'),
    ('{"a": null}', '{"a":null}'),
    ('{"a": -0, "b": 1e10}', '{"a":0,"b":10000000000}'),
]


@pytest.mark.parametrize(("given_json", "canonical"), SPEC_EXAMPLES)
def test_spec_examples_encode_to_the_given_canonical_bytes(given_json: str, canonical: str):
    assert encode_canonical_json(decode_json(given_json)) == canonical.encode("utf-8")


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        ("\n\t\r\b\f", b'"\\n\\t\\r\\b\\f"'),
        ('"\\', b'"\\"\\\\"'),
        ("\x00\x01\x1f", b'"\\u0000\\u0001\\u001f"'),
        ("\x7f", b'"\x7f"'),
        ("/", b'"/"'),
        ("\u2028", '"\u2028"'.encode()),
        ("😀", '"😀"'.encode()),
    ],
)
def test_strings_use_only_the_escapes_the_grammar_allows(value: str, encoded: bytes):
    assert encode_canonical_json(value) == encoded


def test_keys_sort_by_code_point_not_by_utf16_unit():
    # U+FF61 sorts before U+1F600 by code point, after it by UTF-16 code unit.
    assert encode_canonical_json({"😀": 1, "｡": 2}) == '{"｡":2,"😀":1}'.encode()


def test_integral_floats_encode_as_integers():
    assert encode_canonical_json({"a": -0.0, "b": 2.0, "c": [1e3]}) == b'{"a":0,"b":2,"c":[1000]}'


def test_non_integral_floats_are_tolerated_for_legacy_rooms():
    assert encode_canonical_json({"a": 0.5}) == b'{"a":0.5}'


def test_tuples_encode_as_arrays():
    assert encode_canonical_json({"a": (1, 2)}) == b'{"a":[1,2]}'


@pytest.mark.parametrize(
    "value",
    [
        {1: "int key"},
        {"a": {None: 1}},
        {"a": {1, 2}},
        {"a": b"bytes"},
        {"a": float("nan")},
        {"a": float("inf")},
        {"a": "\ud800"},
        {"\udfff": 1},
    ],
)
def test_values_without_a_json_form_are_refused(value: object):
    with pytest.raises(CanonicalJsonError):
        encode_canonical_json(value)


def test_reference_cycles_are_refused_rather_than_looping():
    cycle: dict = {}
    cycle["self"] = cycle
    with pytest.raises(CanonicalJsonError, match="nested"):
        encode_canonical_json(cycle)


def test_absurdly_deep_nesting_is_refused_rather_than_crashing():
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(CanonicalJsonError):
        encode_canonical_json(deep)


@pytest.mark.parametrize("value", [MIN_CANONICAL_INT, MAX_CANONICAL_INT, 0, True, None, "x"])
def test_strict_accepts_integers_at_the_ends_of_the_range(value: object):
    check_canonical_json({"a": [value]}, strict=True)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (MAX_CANONICAL_INT + 1, "integer outside"),
        (MIN_CANONICAL_INT - 1, "integer outside"),
        (1.0, "float"),
        (0.5, "float"),
    ],
)
def test_strict_refuses_big_integers_and_floats_and_says_where(value: object, message: str):
    with pytest.raises(CanonicalJsonError, match=message) as raised:
        check_canonical_json({"content": {"n": [0, value]}}, strict=True)
    assert "['content']['n'][1]" in str(raised.value)


@pytest.mark.parametrize("value", [MAX_CANONICAL_INT + 1, 2**70, 1.0, 0.5])
def test_lenient_accepts_what_rooms_v1_to_v5_may_contain(value: object):
    check_canonical_json({"a": value}, strict=False)


def test_lenient_still_refuses_nan():
    with pytest.raises(CanonicalJsonError):
        check_canonical_json({"a": float("nan")}, strict=False)


@pytest.mark.parametrize(
    "text",
    [
        "[NaN]",
        '{"a": Infinity}',
        "[-Infinity]",
        b"\xff",
        '"\\ud800"',
        '{"\\udc00": 1}',
        "{",
        "",
        "1" * 5000,
        "[" * 100000 + "]" * 100000,
    ],
)
def test_decode_refuses_what_canonical_json_can_never_hold(text: str | bytes):
    with pytest.raises(CanonicalJsonError):
        decode_json(text)


def test_decode_reads_utf8_bytes():
    assert decode_json('{"a": "日"}'.encode()) == {"a": "日"}


def test_error_messages_do_not_echo_huge_input():
    with pytest.raises(CanonicalJsonError) as raised:
        check_canonical_json({"k" * 1_000_000: 1.5}, strict=True)
    assert len(str(raised.value)) < 300


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(MIN_CANONICAL_INT, MAX_CANONICAL_INT) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(deadline=None)
@given(json_values)
def test_canonical_bytes_decode_back_to_the_same_value(value: object):
    assert decode_json(encode_canonical_json(value)) == value


@settings(deadline=None)
@given(json_values)
def test_canonical_bytes_are_a_fixed_point(value: object):
    encoded = encode_canonical_json(value)
    assert encode_canonical_json(json.loads(encoded)) == encoded


@settings(deadline=None)
@given(json_values)
def test_canonical_bytes_match_the_spec_reference_encoder(value: object):
    reference = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    assert encode_canonical_json(value) == reference.encode("utf-8")


@settings(deadline=None)
@given(json_values)
def test_every_in_range_value_passes_the_strict_check(value: object):
    check_canonical_json(value, strict=True)
