"""Unpadded base64: the spec's examples, URL-safe alphabet, lenient padding."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.events.ids import decode_base64 as reexported_decode
from relay.events.unpadded_base64 import decode_base64, encode_base64

SPEC_EXAMPLES = [
    (b"", ""),
    (b"f", "Zg"),
    (b"fo", "Zm8"),
    (b"foo", "Zm9v"),
    (b"foob", "Zm9vYg"),
    (b"fooba", "Zm9vYmE"),
    (b"foobar", "Zm9vYmFy"),
]


@pytest.mark.parametrize(("raw", "encoded"), SPEC_EXAMPLES)
def test_encode_base64_matches_spec_examples(raw: bytes, encoded: str) -> None:
    assert encode_base64(raw) == encoded
    assert decode_base64(encoded) == raw


def test_ids_reexports_base64_helpers() -> None:
    assert reexported_decode is decode_base64


def test_encode_base64_urlsafe_uses_minus_and_underscore() -> None:
    assert encode_base64(b"\xfb\xff", urlsafe=True) == "-_8"
    assert encode_base64(b"\xfb\xff") == "+/8"


def test_decode_base64_accepts_padded_input() -> None:
    assert decode_base64("Zm8=") == b"fo"
    assert decode_base64("Zg==") == b"f"


@pytest.mark.parametrize("bad", ["Zg=", "Zm8==", "Z", "Zm9v\n", "Zm 9v", "Zm-_", "=Zg"])
def test_decode_base64_rejects_malformed(bad: str) -> None:
    with pytest.raises(ValueError):
        decode_base64(bad)


def test_decode_base64_urlsafe_rejects_standard_alphabet() -> None:
    with pytest.raises(ValueError):
        decode_base64("+/8", urlsafe=True)
    assert decode_base64("-_8", urlsafe=True) == b"\xfb\xff"


@given(st.binary(max_size=64), st.booleans())
def test_base64_roundtrips_and_never_pads(raw: bytes, urlsafe: bool) -> None:
    encoded = encode_base64(raw, urlsafe=urlsafe)
    assert "=" not in encoded
    assert decode_base64(encoded, urlsafe=urlsafe) == raw
    stdlib = base64.urlsafe_b64encode(raw) if urlsafe else base64.b64encode(raw)
    assert decode_base64(stdlib.decode(), urlsafe=urlsafe) == raw
