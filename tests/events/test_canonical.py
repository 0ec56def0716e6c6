"""Canonical JSON: spec examples, strict value checks, strict parsing, properties."""

from __future__ import annotations

import json

import pytest
import signedjson.sign
from hypothesis import given
from hypothesis import strategies as st

from relay.events.canonical import (
    MAX_INT,
    MIN_INT,
    CanonicalJsonError,
    JsonParseError,
    canonical_json,
    check_canonical_json_values,
    parse_json_strict,
)
from tests.events.helpers import json_values, load_vector

GOOD = load_vector("canonical_json_examples.json")["examples"]
BROKEN = load_vector("canonical_json_examples.broken.json")["examples"]


@pytest.mark.parametrize("example", GOOD, ids=lambda e: e["canonical"][:30])
def test_canonical_json_matches_spec_example(example: dict[str, str]) -> None:
    value = parse_json_strict(example["input"].encode("utf-8"))
    assert canonical_json(value) == example["canonical"].encode("utf-8")


@pytest.mark.parametrize("example", BROKEN, ids=lambda e: e["canonical"][:30])
def test_canonical_json_rejects_broken_twin(example: dict[str, str]) -> None:
    value = parse_json_strict(example["input"].encode("utf-8"))
    assert canonical_json(value) != example["canonical"].encode("utf-8")


def test_canonical_json_spec_minus_zero_example_encodes_zero() -> None:
    assert canonical_json(parse_json_strict(b'{"a": -0, "b": 10000000000}')) == (
        b'{"a":0,"b":10000000000}'
    )


def test_canonical_json_spec_exponent_example_is_a_float_strict_rooms_reject() -> None:
    # The spec shows 1e10 -> 10000000000, but JSON 1e10 is a float and room
    # versions 6+ forbid floats; like Synapse we reject rather than rewrite.
    value = parse_json_strict(b'{"a": -0, "b": 1e10}')
    with pytest.raises(CanonicalJsonError):
        check_canonical_json_values(value)


def test_canonical_json_escapes_control_characters_lowercase() -> None:
    assert canonical_json({"a": "\x01\n\x1f"}) == b'{"a":"\\u0001\\n\\u001f"}'


def test_canonical_json_is_byte_identical_to_signedjson_for_spec_examples() -> None:
    for example in GOOD:
        value = json.loads(example["input"])
        assert canonical_json(value) == signedjson.sign.encode_canonical_json(value)


@pytest.mark.parametrize("value", [MIN_INT, MAX_INT, 0, -1, True, None, "x", [], {}])
def test_check_canonical_json_values_accepts_allowed_values(value: object) -> None:
    check_canonical_json_values({"v": [value]})


@pytest.mark.parametrize(
    "value",
    [MIN_INT - 1, MAX_INT + 1, 2**64, 1.0, 0.5, float("nan"), float("inf"), "\ud800"],
)
def test_check_canonical_json_values_rejects_forbidden_values(value: object) -> None:
    with pytest.raises(CanonicalJsonError):
        check_canonical_json_values({"a": {"b": [value]}})


def test_check_canonical_json_values_rejects_surrogate_key() -> None:
    with pytest.raises(CanonicalJsonError):
        check_canonical_json_values({"\udc00": 1})


def test_canonical_json_error_is_value_error() -> None:
    assert issubclass(CanonicalJsonError, ValueError)
    assert issubclass(JsonParseError, ValueError)


@pytest.mark.parametrize(
    "data",
    [
        b'{"a": NaN}',
        b'{"a": Infinity}',
        b'{"a": -Infinity}',
        b'{"a": 1, "a": 2}',
        b'{"a": "\xff"}',
        b"\xef\xbb\xbf{}",
        b'{"a": ',
        b"",
    ],
)
def test_parse_json_strict_rejects(data: bytes) -> None:
    with pytest.raises(JsonParseError):
        parse_json_strict(data)


def test_parse_json_strict_rejects_nested_duplicate_keys() -> None:
    with pytest.raises(JsonParseError):
        parse_json_strict(b'{"a": {"b": 1, "b": 1}}')


def test_parse_json_strict_accepts_unicode() -> None:
    assert parse_json_strict('{"日": "本"}'.encode()) == {"日": "本"}


@given(json_values)
def test_canonical_json_roundtrips(value: object) -> None:
    assert parse_json_strict(canonical_json(value)) == value


@given(json_values)
def test_canonical_json_is_idempotent(value: object) -> None:
    once = canonical_json(value)
    assert canonical_json(parse_json_strict(once)) == once


@given(st.dictionaries(st.text(max_size=8), st.integers(0, 9), max_size=8))
def test_canonical_json_sorts_keys_by_code_point(obj: dict[str, int]) -> None:
    decoded = json.loads(canonical_json(obj), object_pairs_hook=list)
    keys = [k for k, _ in decoded]
    assert keys == sorted(obj)
    assert keys == sorted(obj, key=lambda k: [ord(c) for c in k])


@given(json_values)
def test_canonical_json_agrees_with_signedjson(value: object) -> None:
    assert canonical_json(value) == signedjson.sign.encode_canonical_json(value)


@given(json_values)
def test_canonical_json_has_no_insignificant_whitespace(value: object) -> None:
    expected = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert canonical_json(value) == expected.encode("utf-8")
