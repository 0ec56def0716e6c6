"""Signing: the spec's cryptographic test vectors, signedjson as an oracle, properties."""

from __future__ import annotations

import copy
from typing import Any

import nacl.signing
import pytest
import signedjson.key
import signedjson.sign
from hypothesis import given
from hypothesis import strategies as st

from relay.events.hashes import add_content_hash, check_content_hash
from relay.events.redaction import redact
from relay.events.room_versions import V10, V11, V12, room_version
from relay.events.signing import (
    SignatureError,
    decode_signing_key_seed,
    decode_verify_key_base64,
    encode_signing_key_seed,
    generate_signing_key,
    is_valid_key_id,
    sign_event,
    sign_json,
    verify_event_signature,
    verify_json_signature,
    verify_key_base64,
)
from tests.events.helpers import ROOM_VERSIONS, events, json_objects, json_values, load_vector
from tests.events.helpers import vector_names as _names

SEED = "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1"
SPEC_KEY = decode_signing_key_seed(SEED)
GOOD = [n for n in _names("*signing*.json") if not n.endswith(".broken.json")]
BROKEN = _names("*signing*.broken.json")


def _verify_vector(vector: dict[str, Any], signed: dict[str, Any]) -> None:
    """Full verification: the signature, and for events the content hash too."""
    key = decode_signing_key_seed(vector["seed"]).verify_key
    if vector["kind"] == "json":
        verify_json_signature(signed, vector["server_name"], vector["key_id"], key)
        return
    version = room_version(vector["room_version"])
    assert version is not None
    verify_event_signature(signed, version, vector["server_name"], vector["key_id"], key)
    if not check_content_hash(signed):
        raise SignatureError("content hash mismatch")


def _sign_vector(vector: dict[str, Any]) -> dict[str, Any]:
    key = decode_signing_key_seed(vector["seed"])
    if vector["kind"] == "json":
        return sign_json(vector["input"], vector["server_name"], vector["key_id"], key)
    version = room_version(vector["room_version"])
    assert version is not None
    hashed = add_content_hash(vector["input"])
    return sign_event(hashed, version, vector["server_name"], vector["key_id"], key)


def test_every_good_vector_has_a_broken_twin() -> None:
    assert len(GOOD) == 4
    assert [n.replace(".json", ".broken.json") for n in GOOD] == BROKEN


@pytest.mark.parametrize("name", GOOD)
def test_signing_reproduces_spec_vector(name: str) -> None:
    vector = load_vector(name)
    assert _sign_vector(vector) == vector["signed"]


@pytest.mark.parametrize("name", GOOD)
def test_spec_vector_verifies(name: str) -> None:
    vector = load_vector(name)
    _verify_vector(vector, vector["signed"])


@pytest.mark.parametrize("name", BROKEN)
def test_broken_twin_fails_verification(name: str) -> None:
    vector = load_vector(name)
    with pytest.raises(SignatureError):
        _verify_vector(vector, vector["signed"])


def test_redactable_vector_signature_survives_redaction() -> None:
    vector = load_vector("event_signing_redactable.json")
    redacted = redact(vector["signed"], V10)
    assert redacted["content"] == {}
    verify_event_signature(redacted, V10, "domain", "ed25519:1", SPEC_KEY.verify_key)


def test_minimal_vector_signature_fails_under_v11_rules_which_drop_origin() -> None:
    vector = load_vector("event_signing_minimal.json")
    with pytest.raises(SignatureError):
        verify_event_signature(vector["signed"], V11, "domain", "ed25519:1", SPEC_KEY.verify_key)


def test_signing_key_seed_roundtrips() -> None:
    # The spec's seed ends in "1": its last character carries non-zero unused
    # bits, so decoding must be lenient there; we re-encode canonically ("0").
    assert encode_signing_key_seed(SPEC_KEY) == SEED[:-1] + "0"
    assert bytes(decode_signing_key_seed(encode_signing_key_seed(SPEC_KEY))) == bytes(SPEC_KEY)
    key = generate_signing_key()
    assert bytes(decode_signing_key_seed(encode_signing_key_seed(key))) == bytes(key)


def test_decode_signing_key_seed_accepts_padding_and_rejects_wrong_length() -> None:
    assert bytes(decode_signing_key_seed(SEED + "=")) == bytes(SPEC_KEY)
    with pytest.raises(ValueError):
        decode_signing_key_seed("AAAA")


def test_verify_key_base64_roundtrips_and_matches_signedjson() -> None:
    text = verify_key_base64(SPEC_KEY)
    assert text == verify_key_base64(SPEC_KEY.verify_key)
    assert text == signedjson.key.encode_verify_key_base64(SPEC_KEY.verify_key)
    assert decode_verify_key_base64(text) == SPEC_KEY.verify_key


@pytest.mark.parametrize("key_id", ["ed25519:1", "ed25519:a_B9"])
def test_is_valid_key_id_accepts_ed25519(key_id: str) -> None:
    assert is_valid_key_id(key_id)


@pytest.mark.parametrize("key_id", ["ed25519:", "curve25519:1", "ed25519:a-b", "1"])
def test_is_valid_key_id_rejects_others(key_id: str) -> None:
    assert not is_valid_key_id(key_id)


def test_sign_json_rejects_non_ed25519_key_id() -> None:
    with pytest.raises(ValueError):
        sign_json({}, "domain", "rsa:1", SPEC_KEY)


def test_sign_json_keeps_other_signatures_and_unsigned_and_copies() -> None:
    obj = {"a": 1, "signatures": {"other": {"ed25519:x": "c2ln"}}, "unsigned": {"age": 5}}
    before = copy.deepcopy(obj)
    signed = sign_json(obj, "domain", "ed25519:1", SPEC_KEY)
    assert obj == before
    assert signed["signatures"]["other"] == {"ed25519:x": "c2ln"}
    assert signed["unsigned"] == {"age": 5}
    verify_json_signature(signed, "domain", "ed25519:1", SPEC_KEY.verify_key)


@pytest.mark.parametrize(
    ("signatures", "server", "key_id"),
    [
        (None, "domain", "ed25519:1"),
        ({}, "domain", "ed25519:1"),
        ({"domain": "x"}, "domain", "ed25519:1"),
        ({"domain": {}}, "domain", "ed25519:1"),
        ({"domain": {"ed25519:1": "!!!"}}, "domain", "ed25519:1"),
        ({"domain": {"ed25519:1": "AAAA"}}, "domain", "ed25519:1"),
        ({"domain": {"curve25519:1": "AAAA"}}, "domain", "curve25519:1"),
    ],
)
def test_verify_json_signature_rejects_missing_or_malformed(
    signatures: object, server: str, key_id: str
) -> None:
    with pytest.raises(SignatureError):
        verify_json_signature({"signatures": signatures}, server, key_id, SPEC_KEY.verify_key)


def test_verify_json_signature_rejects_other_key() -> None:
    signed = sign_json({"a": 1}, "domain", "ed25519:1", SPEC_KEY)
    with pytest.raises(SignatureError):
        verify_json_signature(signed, "domain", "ed25519:1", generate_signing_key().verify_key)


#: Objects without the keys signing treats specially (signedjson crashes on
#: a malformed ``signatures`` value; ours replaces it).
plain_objects = json_objects.map(
    lambda o: {k: v for k, v in o.items() if k not in ("signatures", "unsigned")}
)


def _signedjson_key(key: nacl.signing.SigningKey) -> nacl.signing.SigningKey:
    return signedjson.key.decode_signing_key_base64("ed25519", "1", encode_signing_key_seed(key))


@given(plain_objects)
def test_signedjson_verifies_our_signature(obj: dict[str, Any]) -> None:
    signed = sign_json(obj, "domain", "ed25519:1", SPEC_KEY)
    verify_key = signedjson.key.get_verify_key(_signedjson_key(SPEC_KEY))
    signedjson.sign.verify_signed_json(signed, "domain", verify_key)


@given(plain_objects)
def test_we_verify_signedjson_signature(obj: dict[str, Any]) -> None:
    signed = signedjson.sign.sign_json(copy.deepcopy(obj), "domain", _signedjson_key(SPEC_KEY))
    verify_json_signature(signed, "domain", "ed25519:1", SPEC_KEY.verify_key)
    assert signed == sign_json(obj, "domain", "ed25519:1", SPEC_KEY)


@given(json_objects, st.text(max_size=6), json_values)
def test_sign_then_verify_succeeds_and_any_change_fails(
    obj: dict[str, Any], key: str, value: object
) -> None:
    signed = sign_json(obj, "domain", "ed25519:1", SPEC_KEY)
    verify_json_signature(signed, "domain", "ed25519:1", SPEC_KEY.verify_key)
    if key in ("signatures", "unsigned") or obj.get(key, object()) == value:
        return
    tampered = {**signed, key: value}
    with pytest.raises(SignatureError):
        verify_json_signature(tampered, "domain", "ed25519:1", SPEC_KEY.verify_key)


@given(events(), json_values)
def test_sign_event_then_verify_succeeds_and_changing_a_redacted_field_fails(
    event: dict[str, Any], value: object
) -> None:
    for version in ROOM_VERSIONS:
        signed = sign_event(add_content_hash(event), version, "domain", "ed25519:1", SPEC_KEY)
        verify_event_signature(signed, version, "domain", "ed25519:1", SPEC_KEY.verify_key)
        assert check_content_hash(signed)
        if signed.get("sender") != value:
            tampered = {**signed, "sender": value}
            with pytest.raises(SignatureError):
                verify_event_signature(
                    tampered, version, "domain", "ed25519:1", SPEC_KEY.verify_key
                )


@given(events())
def test_event_signature_is_over_the_redacted_form(event: dict[str, Any]) -> None:
    for version in (V10, V11, V12):
        hashed = add_content_hash(event)
        signed = sign_event(hashed, version, "domain", "ed25519:1", SPEC_KEY)
        by_hand = sign_json(redact(hashed, version), "domain", "ed25519:1", SPEC_KEY)
        assert signed["signatures"] == by_hand["signatures"]


def test_verify_json_signature_rejects_unencodable_object() -> None:
    signed = sign_json({"a": "x"}, "domain", "ed25519:1", SPEC_KEY)
    with pytest.raises(SignatureError):
        verify_json_signature({**signed, "a": "\ud800"}, "domain", "ed25519:1", SPEC_KEY.verify_key)
